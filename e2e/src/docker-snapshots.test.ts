/**
 * Snapshots and clones through Docker (issue 20), with a real dockerd, the plugin, a dataset
 * agent on a loopback pool and real fsfreeze: a container writes, a snapshot is taken, it
 * writes more; `docker volume create -o from-snapshot=` and `-o clone-of=` make volumes that
 * hold the data of that moment and of now. Crash consistency: a writer that fsyncs each line
 * and then acknowledges it keeps writing while snapshots are taken; every clone holds a
 * prefix of the lines, every line acknowledged before the snapshot was asked for, and no
 * torn line. Needs root.
 */
import type { SnapshotConfiguration } from '@flocker/api';
import { until, type FlockerDockerStack } from './docker';
import { dockerStackForSuite } from './docker/suite';

jest.setTimeout(240_000);

describe('snapshots and clones with real Docker', () => {
  let stack: FlockerDockerStack;
  dockerStackForSuite((s) => (stack = s));

  /** Takes a snapshot of a Docker volume and waits until the backend holds it. */
  async function snapshotOf(volume: string, name: string): Promise<SnapshotConfiguration> {
    const d = await stack.dataset(volume);
    const s = await stack.client.createSnapshot({ dataset_id: d!.dataset_id, metadata: { name } });
    await until(
      `snapshot ${name} to be taken`,
      async () => (await stack.client.listSnapshotState()).some((x) => x.snapshot_id === s.snapshot_id),
      60_000,
      50,
    );
    return s;
  }

  it('from-snapshot holds the data of the snapshot, clone-of the data of now; both are independent volumes', async () => {
    const drv = stack.driver;
    await stack.docker(['volume', 'create', '-d', drv, '-o', 'size=128MiB', 'src']);
    await stack.runWith('src', 'echo first > /data/a; sync');
    await snapshotOf('src', 'src-1');
    await stack.runWith('src', 'echo second >> /data/a; sync');
    await stack.docker(['volume', 'create', '-d', drv, '-o', 'from-snapshot=src-1', 'from-snap']);
    await stack.docker(['volume', 'create', '-d', drv, '-o', 'clone-of=src', 'copy-now']);
    expect(await stack.runWith('from-snap', 'cat /data/a')).toBe('first\n');
    expect(await stack.runWith('copy-now', 'cat /data/a')).toBe('first\nsecond\n');
    await stack.runWith('copy-now', 'echo third >> /data/a; sync');
    expect(await stack.runWith('src', 'cat /data/a')).toBe('first\nsecond\n');
    const clone = await stack.dataset('copy-now');
    expect(clone?.maximum_size).toBe(128 * 1024 * 1024);
    const unknown = await stack.docker(['volume', 'create', '-d', drv, '-o', 'from-snapshot=nope', 'x1'], {
      check: false,
    });
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/no snapshot named or with id "nope"/);
  });

  it('crash consistency: clones of snapshots taken under a writer that fsyncs each line hold a prefix of its lines, every acknowledged one, none torn', async () => {
    const drv = stack.driver;
    await stack.docker(['volume', 'create', '-d', drv, '-o', 'size=128MiB', 'journal']);
    // Each line is written with one write(2), then fsynced (sync), then acknowledged on stdout.
    const writer =
      'i=0; while :; do echo "line $i $(printf %0200d $i)" >> /data/log; sync; echo "ack $i"; i=$((i+1)); done';
    await stack.startWith('writer', 'journal', writer);
    try {
      for (let round = 0; round < 3; round++) {
        await until('the writer to acknowledge lines', async () => (await acked()) > 5 * (round + 1), 30_000, 50);
        const before = await acked();
        const s = await snapshotOf('journal', `j-${round}`);
        await stack.docker(['volume', 'create', '-d', drv, '-o', `from-snapshot=${s.snapshot_id}`, `jclone-${round}`]);
        const lines = (await stack.runWith(`jclone-${round}`, 'cat /data/log')).split('\n');
        expect(lines.pop()).toBe(''); // ends with a whole line
        expect(lines.length).toBeGreaterThanOrEqual(before);
        lines.forEach((l, i) => expect(l).toBe(`line ${i} ${String(i).padStart(200, '0')}`));
      }
    } finally {
      await stack.docker(['rm', '-f', 'writer'], { check: false });
    }
  });

  /** How many lines the writer has acknowledged (fsynced) so far. */
  async function acked(): Promise<number> {
    const out = (await stack.docker(['logs', 'writer'])).stdout.trim().split('\n');
    const last = /^ack (\d+)$/.exec(out[out.length - 1] ?? '');
    return last ? Number(last[1]) + 1 : 0;
  }
});
