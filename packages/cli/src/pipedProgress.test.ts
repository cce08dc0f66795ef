/**
 * A wait's progress with stderr not a terminal (s16 U3 item 7): a user piping `flocker volumes move` to a log saw
 * only the first and the last line, never the README's "caught up …; waiting for its users…". Now a log gets the
 * same lines as a terminal, one per phase reached — not one per tick of the copy's figures, nor one per round of a
 * move whose source stays in use (its rounds go back and forth between copying and caught up: seen live).
 */
import type { ClusterSnapshot, FlockerClient, LocalMove } from '@flocker/api';
import { A, B, D1, dataset, mounted, node, snapshot } from '@flocker/web-ui/testing';
import { buildCli } from './cli';

const MiB = 1024 * 1024;
type Phase = LocalMove['phase'];

/** big moving from a to b (primary b), a's report saying how far. */
const moving = (generation: number, phase: Phase, rounds: number, sent: number): ClusterSnapshot =>
  snapshot({
    generation: String(generation),
    datasets: [dataset(D1, 'big', B)],
    nodes: [
      node(A, 'a', {
        backend: 'local-btrfs',
        manifestations: [mounted(D1, '/a')],
        moves: [{ dataset_id: D1, to: B, phase, rounds, bytes_sent: sent * MiB, bytes_total: 100 * MiB }],
      }),
      node(B, 'b', { backend: 'local-btrfs' }),
    ],
  });

async function run(interactive: boolean): Promise<string[]> {
  const before = snapshot({
    datasets: [dataset(D1, 'big', A)],
    nodes: [
      node(A, 'a', { backend: 'local-btrfs', manifestations: [mounted(D1, '/a')] }),
      node(B, 'b', { backend: 'local-btrfs' }),
    ],
  });
  const done = snapshot({
    generation: '99',
    datasets: [dataset(D1, 'big', B)],
    nodes: [
      node(A, 'a', { backend: 'local-btrfs' }),
      node(B, 'b', { backend: 'local-btrfs', manifestations: [mounted(D1, '/b')] }),
    ],
  });
  const snapshots = [
    before,
    moving(2, 'copying', 0, 10),
    moving(3, 'copying', 0, 40),
    moving(4, 'copying', 0, 90),
    moving(5, 'copying', 1, 100),
    moving(6, 'waitingForRelease', 2, 100),
    moving(7, 'copying', 3, 101),
    moving(8, 'waitingForRelease', 3, 101),
    moving(9, 'copying', 4, 102),
    moving(10, 'waitingForRelease', 4, 102),
    moving(11, 'final', 5, 103),
    moving(12, 'promoting', 5, 103),
    done,
  ];
  const fake = {
    listDatasets: async () => [dataset(D1, 'big', A)],
    waitForCluster: async () => (snapshots.length > 1 ? snapshots.shift() : snapshots[0]),
    updateDataset: async () => dataset(D1, 'big', B),
    listDatasetState: async () => [{ dataset_id: D1, primary: B, maximum_size: 1, path: '/b' }],
  };
  const err: string[] = [];
  await buildCli(
    ['volumes', 'move', 'big', 'b', '--timeout', '5'],
    { out: () => undefined, err: (t) => err.push(t), interactive },
    () => fake as unknown as FlockerClient,
  ).parseAsync();
  return err;
}

describe('progress lines when stderr is not a terminal', () => {
  it('one line per phase of a local move reached, the first of each, as on a terminal', async () => {
    const piped = await run(false);
    const steps = piped.filter((l) => l.startsWith('  … '));
    expect(steps).toHaveLength(5);
    expect(steps[0]).toMatch(/^ {2}… copying from a to b: 10 MiB of 100 MiB sent \(10%\)/);
    expect(steps[1]).toMatch(/^ {2}… copying what changed on a to b: .*1 round done$/);
    expect(steps[2]).toMatch(/^ {2}… caught up with a; waiting for its users to release the volume/);
    expect(steps[3]).toMatch(/^ {2}… sending the last changes to b/);
    expect(steps[4]).toMatch(/^ {2}… b is taking over/);
  });

  it('a terminal still gets every change of the figures', async () => {
    const tty = await run(true);
    expect(tty.filter((l) => l.startsWith('  … copying from a to b'))).toHaveLength(3);
    expect(tty.filter((l) => l.startsWith('  … copying what changed'))).toHaveLength(3);
    expect(tty.filter((l) => l.startsWith('  … caught up'))).toHaveLength(3);
  });
});
