/**
 * Tears a cluster down from its layout alone, whatever state it is in:
 * processes (by namespace and cgroup membership), pins, netns, the root veth,
 * loop devices backed by files under baseDir (thawed if frozen), cgroups, the pin directory.
 * Every step tolerates "already gone", so it can run any number of times.
 */
import * as path from 'node:path';
import type { ClusterLayout, HostLayout } from './layout';
import { deleteNetns, deleteRootVeth, isMountPoint, releaseHostMountNs, rootMounts } from './namespaces';
import { pidsInCgroup, pidsInNamespace, removeCgroup, signalPids, waitGone } from './processes';
import { run } from './run';
import { releaseMountsAndLoops } from '../loopPools';
import { clearImmutableUnder, removeTree } from '../removeTree';
import { errorMessage } from '@flocker/runtime';

/** Every process that belongs to a host: its mount ns, its netns, its containers' cgroups. */
export function hostPids(host: HostLayout): number[] {
  const pids = new Set<number>([
    ...pidsInNamespace('mnt', host.mntPin),
    ...pidsInNamespace('net', `/run/netns/${host.netns}`),
    ...pidsInCgroup(host.cgroupParent),
  ]);
  pids.delete(process.pid);
  return [...pids];
}

/** SIGKILLs every process of the host until none is left (containers may fork meanwhile). */
export async function killHostProcesses(host: HostLayout, timeoutMs = 10_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let pids = hostPids(host);
  while (pids.length > 0 && Date.now() < deadline) {
    signalPids(pids, 'SIGKILL');
    await waitGone(pids, 2_000);
    pids = hostPids(host);
  }
  return pids;
}

/**
 * Detaches the loop devices backed by files under dir (the hosts' pool), unmounting what the root
 * namespace still mounts of them; one a host left frozen in its (now gone) mount namespace is thawed
 * first (loopPools). Answers the devices still bound after timeoutMs.
 */
export function detachLoopDevicesUnder(dir: string, timeoutMs = 5_000): Promise<string[]> {
  // The pin directory and other root mounts under dir are the teardown's own later steps.
  return Promise.resolve(releaseMountsAndLoops(dir, { timeoutMs, underDir: false }));
}

export interface TeardownReport {
  survivors: number[];
  loopDevicesLeft: string[];
  errors: string[];
}

export async function teardown(layout: ClusterLayout, opts: { removeBaseDir?: boolean } = {}): Promise<TeardownReport> {
  const errors: string[] = [];
  const note = async (what: string, f: () => Promise<unknown>): Promise<void> => {
    try {
      await f();
    } catch (err) {
      errors.push(`${what}: ${errorMessage(err)}`);
    }
  };
  const survivors: number[] = [];
  await Promise.all(
    layout.hosts.map((h) =>
      note(`kill processes of host ${h.name}`, async () => survivors.push(...(await killHostProcesses(h)))),
    ),
  );
  await note('kill the control service', async () => {
    const pids = pidsInNamespace('net', `/run/netns/${layout.controlNetns}`);
    signalPids(pids, 'SIGKILL');
    survivors.push(...(await waitGone(pids, 5_000)));
  });
  for (const h of layout.hosts) {
    await note(`release namespaces of host ${h.name}`, () => releaseHostMountNs(h));
    await note(`delete netns ${h.netns}`, () => deleteNetns(h.netns));
  }
  await note('delete control netns', () => deleteNetns(layout.controlNetns));
  await note('delete root veth', () => deleteRootVeth(layout.rootVeth));
  await note('delete switch netns', () => deleteNetns(layout.switchNetns));
  let loopDevicesLeft: string[] = [];
  await note('detach loop devices', async () => (loopDevicesLeft = await detachLoopDevicesUnder(layout.baseDir)));
  for (const h of layout.hosts) removeCgroup(h.cgroupParent);
  await note('unmount pin directory', async () => {
    if (isMountPoint(layout.nsDir)) await run(['umount', '-l', layout.nsDir]);
  });
  // Kept or not, nothing below is left immutable (a fenced image): the kept directory goes with a plain `rm -r`.
  // Only once nothing can write through the fence any more (no process left, no loop device bound).
  if (survivors.length === 0 && loopDevicesLeft.length === 0) clearImmutableUnder(layout.baseDir);
  if (opts.removeBaseDir === true && survivors.length === 0) {
    await note('remove base directory', async () => {
      // Anything still mounted below baseDir in the root ns would make rm fail or, worse, recurse into it.
      const mounted = rootMounts().filter((m) => m.target.startsWith(path.resolve(layout.baseDir) + '/'));
      if (mounted.length > 0) throw new Error(`still mounted: ${mounted.map((m) => m.target).join(', ')}`);
      removeTree(layout.baseDir);
    });
  }
  return { survivors, loopDevicesLeft, errors };
}
