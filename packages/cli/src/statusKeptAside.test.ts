/**
 * Session 16 (review U2 "HIDDEN DATA"): `flocker status` lists each copy of a volume a node kept aside (acknowledged
 * writes the live copy lacks, after a failover) under "Needs attention", one line per copy in the words `volumes show`
 * prints, and `--json` carries them. The exit code stays that of convergence: a kept copy is no step left undone.
 */
import type { ClusterSnapshot, FlockerClient } from '@flocker/api';
import { A, B, D1, D2, dataset, node, snapshot } from '@flocker/web-ui/testing';
import { keptAsideAttention } from './health';
import { runCli } from './testing/runCli';

const MiB = 1024 * 1024;
const PATH_A = `/pool/flocker/diverged/${D1}-5c1f9a3e-0d2b-4b61-9f0e-2a7c4d8e1b36`;
const PATH_B = `tank/flocker-diverged/${D2}-1234567890`;
const C = '0c0c0c0c-0000-4000-8000-00000000000c';
const at = (id: string, path: string) => ({
  dataset_id: id,
  blockdevice_id: `btrfs:/pool/${id}`,
  size: 64 * MiB,
  status: 'mounted' as const,
  path,
});

/** r1 failed over to b, a kept its copy aside; r2 on c (ZFS) with b's copy kept aside; all converged. */
const cluster = (): ClusterSnapshot =>
  snapshot({
    datasets: [dataset(D1, 'r1', B), dataset(D2, 'r2', C)],
    nodes: [
      node(A, 'a', { backend: 'local-btrfs', kept_aside: [{ dataset_id: D1, path: PATH_A }] }),
      node(B, 'b', {
        backend: 'local-zfs',
        alive: false,
        manifestations: [at(D1, '/b')],
        kept_aside: [{ dataset_id: D2, path: PATH_B }],
      }),
      node(C, 'c', { backend: 'local-zfs', manifestations: [at(D2, '/c')] }),
    ],
  });

const fakeClient = (s: ClusterSnapshot) =>
  ({
    version: async () => ({ flocker: 'x' }),
    listDatasets: async () => s.datasets,
    waitForCluster: async () => s,
    listEvents: async () => [],
    listNodes: async () => [],
  }) as unknown as FlockerClient;

describe('flocker status: copies kept aside need attention', () => {
  it('one line per copy: volume, host, path and what to do', () => {
    const s = cluster();
    const k = keptAsideAttention(s, s.datasets);
    expect(k.lines).toEqual([
      `r1: Kept aside on a: ${PATH_A} (writes the live copy lacks; copy them back by hand from that read-only directory or delete it with btrfs subvolume delete ${PATH_A}; deleting the volume deletes it too)`,
      `r2: Kept aside on b (dead): ${PATH_B} (writes the live copy lacks; copy them back by hand (zfs set mountpoint=/mnt/kept ${PATH_B} shows it there) or delete it with zfs destroy -r ${PATH_B}; deleting the volume deletes it too)`,
    ]);
    expect(k.copies[0]).toEqual({
      volume: 'r1',
      dataset_id: D1,
      node_uuid: A,
      host: 'a',
      alive: true,
      path: PATH_A,
      engine: 'btrfs',
    });
  });

  it("a deleted volume's copy is being deleted with it: not listed; a dataset not configured: its short id", () => {
    const s = cluster();
    s.datasets[0]!.deleted = true;
    s.datasets.splice(1, 1);
    const k = keptAsideAttention(s, s.datasets);
    expect(k.lines).toEqual([expect.stringMatching(new RegExp(`^${D2.slice(0, 8)}: Kept aside on b \\(dead\\): `))]);
  });

  it('prints them under "Needs attention"; --json carries them; the exit code is still convergence', async () => {
    // b is dead: its line is under "Not converged" and exit 1; a cluster of live nodes only exits 0.
    const alive = cluster();
    alive.nodes[1]!.alive = true;
    const r = await runCli(() => fakeClient(alive), ['status']);
    expect(r.code).toBe(0);
    expect(r.out).not.toMatch(/Not converged/);
    expect(r.out).toContain(
      ['', 'Needs attention:', `  - r1: Kept aside on a: ${PATH_A} (writes the live copy lacks; `].join('\n'),
    );
    expect(r.out).toMatch(new RegExp(`^  - r2: Kept aside on b: ${PATH_B} \\(writes the live copy lacks; `, 'm'));
    const json = await runCli(() => fakeClient(alive), ['status', '--json']);
    expect((JSON.parse(json.out) as { kept_aside: unknown }).kept_aside).toEqual([
      { volume: 'r1', dataset_id: D1, node_uuid: A, host: 'a', alive: true, path: PATH_A, engine: 'btrfs' },
      { volume: 'r2', dataset_id: D2, node_uuid: B, host: 'b', alive: true, path: PATH_B, engine: 'zfs' },
    ]);
  });

  it('nothing kept aside: no section, an empty list in --json', async () => {
    const s = cluster();
    for (const n of s.nodes) delete n.kept_aside;
    s.nodes[1]!.alive = true;
    const r = await runCli(() => fakeClient(s), ['status']);
    expect(r.out).not.toMatch(/Needs attention|Kept aside/);
    const json = await runCli(() => fakeClient(s), ['status', '--json']);
    expect((JSON.parse(json.out) as { kept_aside: unknown }).kept_aside).toEqual([]);
  });
});
