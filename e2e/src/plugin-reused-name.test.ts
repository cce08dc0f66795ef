/**
 * Issue 17 #9 with a real Docker Engine: a volume name re-used after its dataset was
 * deleted under a running container. Docker sends no Unmount for a volume deleted under
 * it; before the fix the old mount ID stayed, the new volume's Unmounts were filed
 * against the old dataset, and `docker volume rm` said "volume r1 is in use by 2
 * containers on this host". Needs root (a private dockerd, see FlockerDockerStack).
 */
import { until, type FlockerDockerStack } from './docker';
import { dockerStackForSuite } from './docker/suite';

jest.setTimeout(180_000);

describe('a re-used volume name with a real dockerd', () => {
  let stack: FlockerDockerStack;
  const docker = (...args: string[]) => stack.docker(args);

  // About a reused name, not idle leases: the lease goes after the last container (checked below).
  dockerStackForSuite((s) => (stack = s), { pluginArgs: ['--idle-lease-seconds', '0'] });

  it('destroy under a running container, rm -f, docker run again with the name, docker volume rm: no lease left, removed', async () => {
    await stack.startWith('c1', 'r1', 'exec sleep 3600');
    const old = await stack.dataset('r1');
    expect(old).toBeDefined();
    // flocker leases release r1; flocker volumes destroy r1 --no-wait
    await stack.client.releaseLease(old!.dataset_id);
    await stack.client.deleteDataset(old!.dataset_id);
    await docker('rm', '-f', 'c1');
    // The same name again: a new volume (a new dataset), used once and let go.
    const out = await stack.runWith('r1', 'echo new > /data/f; cat /data/f');
    expect(out).toBe('new\n');
    const fresh = await stack.dataset('r1');
    expect(fresh?.dataset_id).toBeDefined();
    expect(fresh?.dataset_id).not.toBe(old!.dataset_id);
    await until(
      "the new volume's lease to be released",
      async () => (await stack.client.listLeases()).length === 0,
      10_000,
      50,
    );
    const rm = await stack.docker(['volume', 'rm', 'r1'], { check: false });
    expect({ code: rm.code, stderr: rm.stderr }).toEqual({ code: 0, stderr: '' });
    expect(await stack.dataset('r1')).toBeUndefined();
  });

  it('docker volume rm answers without waiting for the destroy; the name made again at once is a new, empty volume (issue 23)', async () => {
    expect(await stack.runWith('r2', 'echo old > /data/f; cat /data/f')).toBe('old\n');
    const old = await stack.dataset('r2');
    const agent = stack.agent.pid!;
    const stateOf = async () =>
      (await stack.client.waitForCluster(undefined, 0)).nodes.flatMap((n) => n.manifestations);
    // A stopped agent cannot destroy anything: Remove returning now proves it did not wait for the destroy.
    process.kill(agent, 'SIGSTOP');
    let resumed = false;
    const resume = () => {
      if (!resumed) process.kill(agent, 'SIGCONT');
      resumed = true;
    };
    try {
      await docker('volume', 'rm', 'r2');
      expect((await stack.client.listDatasets()).find((d) => d.dataset_id === old!.dataset_id)?.deleted).toBe(true);
      expect(await stateOf()).toContainEqual(
        expect.objectContaining({ dataset_id: old!.dataset_id, status: 'mounted' }),
      );
      // The same name while the old volume still exists: Docker's Get and Create, then Mount waits for the agent.
      const again = stack.runWith('r2', 'ls -A /data | grep -v lost+found; cat /data/f 2>/dev/null; echo end');
      await new Promise((r) => setTimeout(r, 500));
      resume();
      expect(await again).toBe('end\n');
    } finally {
      resume();
    }
    const fresh = await stack.dataset('r2');
    expect(fresh?.dataset_id).toBeDefined();
    expect(fresh?.dataset_id).not.toBe(old!.dataset_id);
    await until(
      'the old volume to be destroyed',
      async () => !(await stateOf()).some((m) => m.dataset_id === old!.dataset_id),
      30_000,
      100,
    );
    await until('no lease', async () => (await stack.client.listLeases()).length === 0, 10_000, 50);
    await docker('volume', 'rm', 'r2');
  });
});
