import * as winston from 'winston';
import type { MountRequest, VolumeDriverBackend } from '../protocol';
import { mappedMountpoint, PropagatedMounts, propagatedPaths, staleTargets, type Mounter } from './PropagatedMounts';

const PATHS = { hostMountRoot: '/var/lib/flocker/mnt', seenAt: '/host/flocker', propagatedMount: '/mnt/flocker' };
const A = 'aaaaaaaa-0000-4000-8000-000000000001';
const B = 'bbbbbbbb-0000-4000-8000-000000000002';
const logger = winston.createLogger({ silent: true });

describe('propagatedPaths', () => {
  it('maps a dataset mount under the host mount root to its view and its bind target', () => {
    expect(propagatedPaths(`/var/lib/flocker/mnt/${A}`, PATHS)).toEqual({
      source: `/host/flocker/${A}`,
      target: `/mnt/flocker/${A}`,
      datasetId: A,
    });
    expect(propagatedPaths(`/var/lib/flocker/mnt//${A}/`, PATHS)?.target).toBe(`/mnt/flocker/${A}`);
  });

  it('refuses paths outside the root, the root itself and nested paths', () => {
    for (const p of [
      '/elsewhere/x',
      '/var/lib/flocker/mnt',
      '/var/lib/flocker/mnt/../x',
      `/var/lib/flocker/mnt/${A}/sub`,
    ])
      expect(propagatedPaths(p, PATHS)).toBeUndefined();
    expect(mappedMountpoint(undefined, PATHS)).toBeUndefined();
    expect(mappedMountpoint('/elsewhere/x', PATHS)).toBeUndefined();
  });
});

describe('staleTargets', () => {
  it('lists direct children of the propagated mount whose dataset has no mount ID', () => {
    const counts: Record<string, number> = { [A]: 1 };
    expect(
      staleTargets(
        [
          `/mnt/flocker/${A}`,
          `/mnt/flocker/${B}`,
          `/mnt/flocker/${B}`,
          '/mnt/flocker',
          '/other/x',
          `/mnt/flocker/${B}/y`,
        ],
        '/mnt/flocker',
        (id) => counts[id] ?? 0,
      ),
    ).toEqual([`/mnt/flocker/${B}`]);
  });
});

/** A backend that answers the host path of dataset `name` and counts mount IDs as the registry would. */
function fakes(opts: { failBind?: boolean; reported?: string } = {}) {
  const ids = new Map<string, Set<string>>();
  const count = (id: string) => ids.get(id)?.size ?? 0;
  const innerUnmount = jest.fn(async (r: MountRequest) => {
    ids.get(r.Name)?.delete(r.ID);
  });
  const inner: VolumeDriverBackend = {
    create: jest.fn(async () => undefined),
    remove: jest.fn(async () => undefined),
    mount: jest.fn(async (r: MountRequest) => {
      ids.set(r.Name, new Set([...(ids.get(r.Name) ?? []), r.ID]));
      return { Mountpoint: opts.reported ?? `${PATHS.hostMountRoot}/${r.Name}` };
    }),
    unmount: innerUnmount,
    path: jest.fn(async () => ({ Mountpoint: `${PATHS.hostMountRoot}/${A}` })),
    get: jest.fn(async () => ({ Volume: { Name: 'v', Mountpoint: `${PATHS.hostMountRoot}/${A}` } })),
    list: jest.fn(async () => ({ Volumes: [{ Name: 'v', Mountpoint: `${PATHS.hostMountRoot}/${A}` }, { Name: 'w' }] })),
    capabilities: jest.fn(async () => ({ Capabilities: { Scope: 'global' as const } })),
  };
  const mounted = new Set<string>();
  const mounter: Mounter & { binds: string[] } = {
    binds: [],
    mountPoints: () => [...mounted],
    bind: async (source, target) => {
      if (opts.failBind) throw new Error('mount: permission denied');
      mounter.binds.push(`${source} -> ${target}`);
      mounted.add(target);
    },
    unmount: async (target) => {
      mounted.delete(target);
    },
  };
  const served = new PropagatedMounts(inner, { count }, PATHS, logger, mounter);
  return { innerUnmount, mounter, mounted, served, ids };
}

describe('PropagatedMounts', () => {
  it('binds a volume once for its containers and answers the path inside the propagated mount', async () => {
    const { served, mounter, mounted } = fakes();
    expect(await served.mount({ Name: A, ID: 'c1' })).toEqual({ Mountpoint: `/mnt/flocker/${A}` });
    expect(await served.mount({ Name: A, ID: 'c2' })).toEqual({ Mountpoint: `/mnt/flocker/${A}` });
    expect(mounter.binds).toEqual([`/host/flocker/${A} -> /mnt/flocker/${A}`]);
    await served.unmount({ Name: A, ID: 'c1' });
    expect([...mounted]).toEqual([`/mnt/flocker/${A}`]); // c2 still uses it
    await served.unmount({ Name: A, ID: 'c2' });
    expect([...mounted]).toEqual([]); // gone before the agent may unmount the dataset
  });

  it('gives the mount ID back when the bind fails (Docker sends no Unmount after a failed Mount)', async () => {
    const { served, innerUnmount, ids } = fakes({ failBind: true });
    await expect(served.mount({ Name: A, ID: 'c1' })).rejects.toThrow(/permission denied/);
    expect(innerUnmount).toHaveBeenCalledWith({ Name: A, ID: 'c1' });
    expect(ids.get(A)?.size).toBe(0);
  });

  it('refuses a mount outside the mount root it sees (MOUNT_OUTSIDE_ROOT) and gives the mount ID back', async () => {
    const { served, innerUnmount } = fakes({ reported: '/somewhere/else' });
    await expect(served.mount({ Name: A, ID: 'c1' })).rejects.toMatchObject({ code: 'MOUNT_OUTSIDE_ROOT' });
    expect(innerUnmount).toHaveBeenCalled();
  });

  it('at start, and after a Remove, drops binds of datasets no container uses (a crash left them)', async () => {
    const { served, mounted } = fakes();
    mounted.add(`/mnt/flocker/${B}`);
    mounted.add('/mnt/flocker');
    await served.start();
    expect([...mounted]).toEqual(['/mnt/flocker']);
    mounted.add(`/mnt/flocker/${B}`);
    await served.remove({ Name: B });
    expect([...mounted]).toEqual(['/mnt/flocker']);
  });

  it('answers Path, Get and List with paths inside the propagated mount', async () => {
    const { served } = fakes();
    expect(await served.path({ Name: 'v' })).toEqual({ Mountpoint: `/mnt/flocker/${A}` });
    expect(await served.get({ Name: 'v' })).toEqual({ Volume: { Name: 'v', Mountpoint: `/mnt/flocker/${A}` } });
    expect(await served.list()).toEqual({
      Volumes: [{ Name: 'v', Mountpoint: `/mnt/flocker/${A}` }, { Name: 'w' }],
    });
    expect(await served.capabilities()).toEqual({ Capabilities: { Scope: 'global' } });
  });
});
