import type { ClusterSnapshot } from '@flocker/api';
import { decisionKey, localManifestation } from './LocalAgent';
import { chooseReplicaNode, localClusterNodes, viewKind } from './localChanges';

const ME = '11111111-1111-4111-8111-111111111111';
const B = '22222222-2222-4222-8222-222222222222';
const D = '33333333-3333-4333-8333-333333333333';

function snapshot(generation: string, myManifestations: string[], bAlive = true): ClusterSnapshot {
  const node = (uuid: string, alive: boolean, datasets: string[]): ClusterSnapshot['nodes'][number] => ({
    uuid,
    era: 'e',
    host: uuid === ME ? '10.0.0.1' : '10.0.0.2',
    instance_id: uuid,
    backend: 'local-btrfs',
    manifestations: datasets.map((d) => ({
      dataset_id: d,
      blockdevice_id: `btrfs:/p/${d}`,
      size: 1,
      status: 'mounted',
    })),
    errors: [],
    alive,
    last_seen: '2026-12-04T12:00:00Z',
  });
  return {
    generation,
    configuration_tag: 't',
    datasets: [{ dataset_id: D, primary: ME, maximum_size: 1000, deleted: false, metadata: {} }],
    leases: [],
    nodes: [node(ME, true, myManifestations), node(B, bAlive, [])],
  };
}

describe('LocalAgent: when a snapshot is worth a turn', () => {
  it('not for its own report (which moves the generation), but for the configuration or another node', () => {
    const base = decisionKey(snapshot('1', []), ME);
    expect(decisionKey(snapshot('2', [D]), ME)).toBe(base);
    expect(decisionKey(snapshot('3', [], false), ME)).not.toBe(base);
    const moved = snapshot('4', []);
    expect(decisionKey({ ...moved, datasets: [{ ...moved.datasets[0]!, primary: B }] }, ME)).not.toBe(base);
  });

  it("for a replica setting (the opt-in to a replica's loss window) and a replica node, not for the replica's age", () => {
    const base = snapshot('1', []);
    const key = decisionKey(base, ME);
    const optIn = { ...base.datasets[0]!, metadata: { 'clusterhq:flocker:accept-replica-loss': 'true' } };
    expect(decisionKey({ ...base, datasets: [optIn] }, ME)).not.toBe(key);
    // Another metadata key changes nothing the agent decides on.
    expect(decisionKey({ ...base, datasets: [{ ...base.datasets[0]!, metadata: { name: 'x' } }] }, ME)).toBe(key);
    const replica = (snapshotName: string, takenAt: string): ClusterSnapshot => ({
      ...base,
      nodes: [
        base.nodes[0]!,
        { ...base.nodes[1]!, replicas: [{ dataset_id: D, node_uuid: ME, snapshot: snapshotName, taken_at: takenAt }] },
      ],
    });
    expect(decisionKey(replica('move-000001', '2026-12-04T12:00:00Z'), ME)).not.toBe(key);
    expect(decisionKey(replica('move-000002', '2026-12-04T12:00:30Z'), ME)).toBe(
      decisionKey(replica('move-000001', '2026-12-04T12:00:00Z'), ME),
    );
  });
});

describe('LocalAgent: localManifestation', () => {
  const MiB = 1024 * 1024;
  const copy = (usedBytes: number, mountPoints: string[]) => ({
    datasetId: D,
    size: 256 * MiB,
    usedBytes,
    mountPoints,
  });

  it("reports a mounted copy's used bytes as the engine counts them, coarsened to about 1/64", () => {
    expect(localManifestation(copy(3 * MiB + 5, ['/flocker/x']), '/flocker/x', 'btrfs', '/p')).toEqual({
      dataset_id: D,
      blockdevice_id: `btrfs:/p/${D}`,
      size: 256 * MiB,
      status: 'mounted',
      path: '/flocker/x',
      used_bytes: 3 * MiB,
    });
    // 100 MiB and 100.5 MiB fall in the same 1-MiB step; 130 MiB and 131 MiB in the same 2-MiB step.
    const used = (bytes: number) => localManifestation(copy(bytes, ['/m']), '/m', 'btrfs', '/p').used_bytes;
    expect(used(100 * MiB + MiB / 2)).toBe(100 * MiB);
    expect(used(131 * MiB)).toBe(used(130 * MiB));
  });

  it('reports no used bytes for a copy not mounted at its path (a move target, a retired copy)', () => {
    const m = localManifestation(copy(10 * MiB, ['/elsewhere']), '/m', 'zfs', 'tank');
    expect(m).toEqual({ dataset_id: D, blockdevice_id: `zfs:tank/${D}`, size: 256 * MiB, status: 'attached' });
  });
});

describe('LocalAgent: how it takes what its follower adopted (issue 24)', () => {
  const peer = (uuid: string, copies: number) => ({
    uuid,
    host: `h-${uuid.slice(0, 1)}`,
    alive: true,
    copies,
    replica_of: [],
  });

  it('a local view (peers), a narrow view before the service knows the node as local, an older service, a whole snapshot', () => {
    const s = snapshot('1', []);
    expect(viewKind({ ...s, peers: [] }, ME, true)).toBe('local');
    // Its own state is local-btrfs and still no peers: a service without local views (follow whole snapshots).
    expect(viewKind(s, ME, true)).toBe('older');
    // Not reported yet (or reported as another backend): the service cannot know.
    expect(viewKind({ ...s, nodes: [s.nodes[1]!] }, ME, true)).toBe('narrow');
    expect(viewKind(s, ME, false)).toBe('whole');
  });

  it('peers without a state in the view count their copies for the replica choice; states list them', () => {
    const C = '44444444-4444-4444-8444-444444444444';
    // Peers show copies in steps of 16 (@flocker/api peerCopies).
    const s = { ...snapshot('1', [D]), peers: [peer(ME, 0), peer(B, 48), peer(C, 32)] };
    const nodes = localClusterNodes({ ...s, nodes: s.nodes.filter((n) => n.uuid !== B) });
    expect(nodes.map((n) => [n.uuid, n.copies.length, n.copyCount])).toEqual([
      [ME, 1, undefined],
      [B, 0, 48],
      [C, 0, 32],
    ]);
    // The least loaded other live node: C (32 copies) before B (48).
    expect(chooseReplicaNode(D, undefined, nodes, ME)?.uuid).toBe(C);
  });
});
