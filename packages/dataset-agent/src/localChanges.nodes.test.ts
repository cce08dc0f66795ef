/**
 * localClusterNodes indexes the replicas the states name once per snapshot, and chooseReplicaNode
 * scans for the least-loaded node (copies in steps: @flocker/api peerCopies) instead of sorting: over seeded random whole snapshots and local
 * views (peers missing some states, peers without a state, namings of unknown and block nodes,
 * the same naming from several reporters), both answer exactly what the per-node definitions they
 * replaced answer (kept here as the reference).
 */
import { type ClusterSnapshot, isLocalBackend, localViewOf, type NodeState, peerCopies } from '@flocker/api';
import { chooseReplicaNode, type LocalClusterNode, localClusterNodes, replicasNamedOn } from './localChanges';
import { seededRandom as random } from './testing/random';

/** The definition before (replicasNamedOn per node: quadratic in the nodes of a whole snapshot). */
function referenceNodes(snapshot: ClusterSnapshot): LocalClusterNode[] {
  const states = new Map(snapshot.nodes.filter((n) => isLocalBackend(n.backend)).map((n) => [n.uuid, n]));
  const out: LocalClusterNode[] = [];
  if (snapshot.peers !== undefined) {
    const peers = new Map(snapshot.peers.map((p) => [p.uuid, p]));
    for (const uuid of new Set([...peers.keys(), ...states.keys()])) {
      const p = peers.get(uuid);
      const n = states.get(uuid);
      out.push({
        uuid,
        host: n?.host ?? p?.host ?? '',
        alive: n?.alive ?? p?.alive ?? false,
        copies: n?.manifestations.map((m) => m.dataset_id) ?? [],
        ...(n === undefined ? { copyCount: p?.copies ?? 0 } : {}),
        replicaOf: p?.replica_of ?? replicasNamedOn(snapshot, uuid),
      });
    }
  } else
    for (const n of states.values())
      out.push({
        uuid: n.uuid,
        host: n.host,
        alive: n.alive,
        copies: n.manifestations.map((m) => m.dataset_id),
        replicaOf: replicasNamedOn(snapshot, n.uuid),
      });
  return out.sort((a, b) => (a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0));
}

/** The choice before: a sort of the live others by load (copies in steps), then uuid. */
function referenceChoice(
  datasetId: string,
  recorded: string | undefined,
  nodes: readonly LocalClusterNode[],
  self: string,
): LocalClusterNode | undefined {
  // Never a node holding a live copy of the dataset (session 15: an old primary back after a failover).
  const candidates = nodes.filter((n) => n.alive && n.uuid !== self && !n.copies.includes(datasetId));
  const kept = candidates.find((n) => n.uuid === recorded);
  if (kept !== undefined) return kept;
  const load = (n: LocalClusterNode): number =>
    peerCopies(n.copyCount ?? n.copies.length) + (n.replicaOf ?? []).filter((x) => x !== datasetId).length;
  return [...candidates].sort((a, b) => load(a) - load(b) || (a.uuid < b.uuid ? -1 : 1))[0];
}

const uuid = (i: number): string => `${String(i).padStart(8, '0')}-0000-4000-8000-000000000000`;
const dataset = (i: number): string => `${String(i).padStart(8, '0')}-1111-4111-8111-111111111111`;

/** A whole snapshot: 1–12 nodes (some of a block backend), random copies and replica namings (some of nodes with no state). */
function randomWhole(r: () => number): ClusterSnapshot {
  const int = (n: number): number => Math.floor(r() * n);
  const count = 1 + int(12);
  const ids = Array.from({ length: 1 + int(10) }, (_, i) => dataset(i));
  const nodes: NodeState[] = Array.from({ length: count }, (_, i) => {
    // Some nodes with many copies (of datasets not configured): loads across the steps of peerCopies.
    const held = [
      ...ids.filter(() => r() < 0.2),
      ...Array.from({ length: r() < 0.3 ? int(40) : 0 }, (_, j) => dataset(100 + j)),
    ];
    const named = ids
      .filter(() => r() < 0.25)
      .map((id) => ({
        dataset_id: id,
        // Up to two uuids past the last node: namings of nodes that have no state.
        node_uuid: uuid(int(count + 2)),
        snapshot: null,
        taken_at: null,
      }));
    return {
      uuid: uuid(i),
      era: 'e',
      host: `10.0.0.${i}`,
      instance_id: uuid(i),
      backend: r() < 0.2 ? 'loopback' : r() < 0.5 ? 'local-btrfs' : 'local-zfs',
      manifestations: held.map((id) => ({
        dataset_id: id,
        blockdevice_id: `btrfs:p/${id}`,
        size: 1 << 26,
        status: 'attached' as const,
      })),
      ...(named.length > 0 ? { replicas: named } : {}),
      errors: [],
      alive: r() < 0.8,
      last_seen: '2026-12-05T00:00:00.000Z',
    };
  });
  return {
    generation: 'g',
    configuration_tag: 't',
    datasets: ids.map((id) => ({ dataset_id: id, primary: uuid(int(count)), deleted: false, metadata: {} })),
    leases: [],
    nodes,
  };
}

/** A local view of it, some of the time with a peer missing or a peer whose state the view does not show. */
function randomView(whole: ClusterSnapshot, r: () => number): ClusterSnapshot {
  const me = whole.nodes[Math.floor(r() * whole.nodes.length)]?.uuid as string;
  const view = localViewOf(whole, me);
  const peers = (view.peers ?? []).filter(() => r() < 0.9);
  if (r() < 0.3)
    peers.push({
      uuid: uuid(90),
      host: '10.0.9.0',
      alive: r() < 0.5,
      copies: peerCopies(Math.floor(r() * 40)),
      replica_of: [],
    });
  return { ...view, peers };
}

describe('localClusterNodes and chooseReplicaNode answer as their per-node definitions', () => {
  it('over seeded random whole snapshots and local views', () => {
    let viewsWithoutPeer = 0;
    let namedFromStates = 0;
    let choices = 0;
    for (let run = 0; run < 500; run++) {
      const r = random(2300 + run);
      const whole = randomWhole(r);
      for (const snapshot of [whole, randomView(whole, r)]) {
        const want = referenceNodes(snapshot);
        const got = localClusterNodes(snapshot);
        if (JSON.stringify(got) !== JSON.stringify(want)) expect(got).toEqual(want);
        if (snapshot.peers !== undefined && got.some((n) => !snapshot.peers?.some((p) => p.uuid === n.uuid)))
          viewsWithoutPeer++;
        if (snapshot.peers === undefined) namedFromStates += got.filter((n) => (n.replicaOf ?? []).length > 0).length;
        // In uuid order (as localClusterNodes gives them) and in reverse (the tie-break by uuid matters there).
        for (const nodes of [got, [...got].reverse()])
          for (const d of snapshot.datasets)
            for (const self of [got[0]?.uuid ?? uuid(0), uuid(Math.floor(r() * 12))])
              for (const recorded of [undefined, uuid(Math.floor(r() * 14))]) {
                const chosen = chooseReplicaNode(d.dataset_id, recorded, nodes, self);
                const expected = referenceChoice(d.dataset_id, recorded, nodes, self);
                // expect only on a difference (tens of thousands of choices).
                if (chosen !== expected) expect(chosen).toBe(expected);
                choices++;
              }
      }
    }
    // The runs reached what the index changes: namings read from the states, views with states that have no peer.
    expect(namedFromStates).toBeGreaterThan(1000);
    expect(viewsWithoutPeer).toBeGreaterThan(50);
    expect(choices).toBeGreaterThan(20_000);
  });
});
