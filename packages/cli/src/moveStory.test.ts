/**
 * A `--when-released` move as a user follows it (s16 U3 item 5): `volumes list` named the source (where the data
 * is), `volumes show` the target (the configured primary), so the same volume read as on two nodes. Both now say
 * where the data is now and where it is going, and whether it waits for the source's users.
 */
import type { ClusterSnapshot, FlockerClient, Lease } from '@flocker/api';
import { A, B, D1, dataset, node, snapshot } from '@flocker/web-ui/testing';
import { describeText, describeVolume } from './describe';
import { volumeState } from './health';
import { runCli } from './testing/runCli';

const MiB = 1024 * 1024;
const localNode = (uuid: string, host: string, over: Parameters<typeof node>[2] = {}) =>
  node(uuid, host, { backend: 'local-btrfs', ...over });
/** The source's container holds the volume: its lease, as the when_released move leaves it. */
const held: Lease = { dataset_id: D1, node_uuid: A, expires: null };

/** big's primary is b; a still has it mounted (a container uses it) and is copying to b. */
const whenReleased = (phase: 'copying' | 'waitingForRelease' = 'waitingForRelease', leases = [held]): ClusterSnapshot =>
  snapshot({
    datasets: [dataset(D1, 'big', B)],
    leases,
    nodes: [
      localNode(A, 'a', {
        manifestations: [
          { dataset_id: D1, blockdevice_id: `btrfs:/pool/${D1}`, size: 64 * MiB, status: 'mounted', path: '/a' },
        ],
        moves: [{ dataset_id: D1, to: B, phase, rounds: 3, bytes_sent: MiB, bytes_total: 64 * MiB }],
      }),
      localNode(B, 'b'),
    ],
  });

const fake = (s: ClusterSnapshot) =>
  ({
    listDatasets: async () => s.datasets,
    waitForCluster: async () => s,
    listLeases: async () => s.leases,
    listSnapshots: async () => [],
  }) as unknown as FlockerClient;

describe('a --when-released move, one story', () => {
  it('volumeState: where the data is (node) and where it goes (moving_to), waiting for its users', () => {
    expect(volumeState(whenReleased(), dataset(D1, 'big', B))).toMatchObject({
      node: 'a',
      state: 'moving',
      moving_to: 'b',
      moving_to_uuid: B,
      when_released: true,
    });
    // A move no user holds back: going to b, not waiting for anyone.
    expect(volumeState(whenReleased('copying', []), dataset(D1, 'big', B))).toMatchObject({
      node: 'a',
      moving_to: 'b',
      when_released: false,
    });
  });

  it('volumes list: NODE is where the data is now, with the target marked', async () => {
    const r = await runCli(() => fake(whenReleased()), ['volumes', 'list']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^big +\S+ +\d+ MiB +a → b \(when released\) +moving +\/a$/m);
    const plain = await runCli(() => fake(whenReleased('copying', [])), ['volumes', 'list']);
    expect(plain.out).toMatch(/^big +\S+ +\d+ MiB +a → b +moving +\/a$/m);
  });

  it('volumes list -o json: node stays the source; the target only adds fields', async () => {
    const r = await runCli(() => fake(whenReleased()), ['volumes', 'list', '-o', 'json']);
    const [row] = JSON.parse(r.out) as Record<string, unknown>[];
    expect(row).toMatchObject({ node: 'a', node_uuid: A, primary: B, state: 'moving', moving_to: 'b' });
    expect(row).toMatchObject({ moving_to_uuid: B, when_released: true });
  });

  it('volumes show: "On:" the source (in use) and "Moving to:" the target once released, no bare "Primary:"', async () => {
    const r = await runCli(() => fake(whenReleased()), ['volumes', 'show', 'big']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(new RegExp(`^On: +a \\(${A}\\), in use there$`, 'm'));
    expect(r.out).toMatch(new RegExp(`^Moving to: +b \\(${B}\\) once released$`, 'm'));
    expect(r.out).not.toMatch(/^Primary:/m);
    const plain = await runCli(() => fake(whenReleased('copying', [])), ['volumes', 'show', 'big']);
    expect(plain.out).toMatch(new RegExp(`^On: +a \\(${A}\\)$`, 'm'));
    expect(plain.out).toMatch(new RegExp(`^Moving to: +b \\(${B}\\)$`, 'm'));
  });

  it('describe volume: the same two lines', () => {
    const s = whenReleased();
    const text = describeText(describeVolume(s, s.datasets[0]!, s.leases, [], []));
    expect(text).toMatch(new RegExp(`^On: +a \\(${A}\\), in use there$`, 'm'));
    expect(text).toMatch(new RegExp(`^Moving to: +b \\(${B}\\) once released$`, 'm'));
  });

  it('no move: "Primary:" as before', async () => {
    const s = whenReleased();
    s.datasets[0]!.primary = A;
    s.nodes[0]!.moves = [];
    const r = await runCli(() => fake(s), ['volumes', 'show', 'big']);
    expect(r.out).toMatch(new RegExp(`^Primary: +a \\(${A}\\)$`, 'm'));
    expect(r.out).not.toMatch(/^(On|Moving to):/m);
  });
});
