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

  dockerStackForSuite((s) => (stack = s));

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
});
