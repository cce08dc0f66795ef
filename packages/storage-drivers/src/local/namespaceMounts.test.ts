/**
 * Review U2 (session 16), finding 1: a move's release (no mount of the dataset in any mount
 * namespace) was seen while a container still wrote to the volume, and the final round went out.
 * The scan of every namespace marked a namespace read once its link was read, before its mounts
 * were: a process of the container's namespace that ended in between (a `sleep` of the writer's
 * loop, listed before the container's shell after the pids wrapped) left that namespace unread for
 * the whole scan, so the container's mount was not seen.
 */
import { readNamespaceMounts, type ProcReader } from './processes';

const CONTAINER_NS = 'mnt:[4026532900]';
const HOST_NS = 'mnt:[4026531841]';
const HOST_MOUNTINFO = '22 1 0:50 / /pool rw,relatime shared:1 - btrfs /dev/loop9 rw\n';
const CONTAINER_MOUNTINFO =
  '900 800 0:50 /flocker/datasets/0b0e6d4c-6c52-4a43-9d8a-4e3f1c1d2a10 /data rw,relatime - btrfs /dev/loop9 rw\n';

function gone(): Error {
  return Object.assign(new Error('gone'), { code: 'ENOENT' });
}

function proc(over: Partial<Omit<ProcReader, 'pids'>> & { pids: string[] }): ProcReader {
  return {
    pids: () => Promise.resolve(over.pids),
    mountNamespace: over.mountNamespace ?? (() => Promise.resolve(HOST_NS)),
    mountInfo: over.mountInfo ?? (() => Promise.resolve(HOST_MOUNTINFO)),
  };
}

describe('readNamespaceMounts (every mount namespace of the host)', () => {
  it("a process of a namespace that ended between its two reads does not hide that namespace's other processes", async () => {
    // pid 7: the container's `sleep`, ended after its link was read; pid 30000: the container's shell.
    const mounts = await readNamespaceMounts(
      proc({
        pids: ['1', '7', '30000'],
        mountNamespace: (pid) => Promise.resolve(pid === '1' ? HOST_NS : CONTAINER_NS),
        mountInfo: (pid) => {
          if (pid === '7') return Promise.reject(gone());
          return Promise.resolve(pid === '1' ? HOST_MOUNTINFO : CONTAINER_MOUNTINFO);
        },
      }),
    );
    expect(mounts.map((m) => m.mountPoint).sort()).toEqual(['/data', '/pool']);
  });

  it('a namespace is read once (the first process whose mounts could be read)', async () => {
    const read: string[] = [];
    await readNamespaceMounts(
      proc({
        pids: ['1', '2', '3'],
        mountInfo: (pid) => {
          read.push(pid);
          return Promise.resolve(HOST_MOUNTINFO);
        },
      }),
    );
    expect(read).toEqual(['1']);
  });

  it('a process that could not be read for another reason than having ended fails the scan (never "not in use" by a guess)', async () => {
    await expect(
      readNamespaceMounts(
        proc({
          pids: ['1', '2'],
          mountNamespace: (pid) => Promise.resolve(pid === '1' ? HOST_NS : CONTAINER_NS),
          mountInfo: (pid) =>
            pid === '1'
              ? Promise.resolve(HOST_MOUNTINFO)
              : Promise.reject(Object.assign(new Error('EMFILE: too many open files'), { code: 'EMFILE' })),
        }),
      ),
    ).rejects.toThrow(/EMFILE/);
  });

  it('processes that ended (ENOENT, ESRCH, EINVAL for a zombie) or are not ours to read (EACCES) are skipped', async () => {
    const mounts = await readNamespaceMounts(
      proc({
        pids: ['1', '2', '3', '4', '5'],
        mountNamespace: (pid) =>
          pid === '2' || pid === '5'
            ? Promise.reject(Object.assign(new Error('x'), { code: pid === '2' ? 'ESRCH' : 'EACCES' }))
            : Promise.resolve(HOST_NS),
        mountInfo: (pid) =>
          pid === '1'
            ? Promise.reject(Object.assign(new Error('x'), { code: 'EINVAL' }))
            : Promise.resolve(HOST_MOUNTINFO),
      }),
    );
    expect(mounts.map((m) => m.mountPoint)).toEqual(['/pool']);
  });
});
