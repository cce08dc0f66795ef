/**
 * A local move when released (C2's when_released, issue 24): the primary changes while this node's
 * container keeps the dataset leased. The source's host mount stays while this node holds a lease on
 * the dataset: a Docker Mount answered from it just before the move committed binds the copy, not the
 * bare directory under it (C2's notes, "Residual window"). Phase 1 runs on the mounted copy; the
 * release that starts phase 2 is no lease here and no mount in any namespace (the host's goes first).
 */
import { type ClusterSnapshot } from '@flocker/api';
import { decisionKey } from './LocalAgent';
import {
  calculateLocalChanges,
  leasedHere,
  type LocalClusterNode,
  type LocalDesiredDataset,
  type LocalObservation,
} from './localChanges';
import { A, B, D, PATH as PATH_A, ctxA } from './localChangesTestSupport';

const E = '44444444-4444-4444-8444-444444444444';
const movedToB: LocalDesiredDataset = { datasetId: D, primary: B, maximumSize: 1000, deleted: false };
const nodes: LocalClusterNode[] = [
  { uuid: A, host: 'a', alive: true, copies: [D] },
  { uuid: B, host: 'b', alive: true, copies: [] },
];
const moving = (leased: string[]): LocalObservation => ({
  copies: [{ datasetId: D, size: 1000, mountPoints: [PATH_A] }],
  moving: new Set([D]),
  leasedHere: new Set(leased),
});

describe('a move away while this node holds a lease on the dataset', () => {
  it('the host mount stays while the lease is held (phase 1 on the mounted copy)', () => {
    expect(calculateLocalChanges([movedToB], nodes, moving([D]), ctxA)).toEqual([]);
  });

  it('the host mount goes once no lease here names the dataset (another dataset leased says nothing)', () => {
    for (const leased of [[], [E]])
      expect(calculateLocalChanges([movedToB], nodes, moving(leased), ctxA)).toEqual([
        { kind: 'unmount', datasetId: D, mountPath: PATH_A },
      ]);
  });

  it('a deleted dataset is stopped whatever the lease (the delete needs no release)', () => {
    expect(calculateLocalChanges([{ ...movedToB, deleted: true }], nodes, moving([D]), ctxA)).toEqual([
      { kind: 'stopMove', datasetId: D },
    ]);
  });
});

describe('the leases this node holds, from the followed snapshot', () => {
  const snap = (leases: ClusterSnapshot['leases']): ClusterSnapshot => ({
    generation: 'g',
    configuration_tag: 't',
    datasets: [{ dataset_id: D, primary: B, maximum_size: 1000, deleted: false, metadata: {} }],
    leases,
    nodes: [],
  });

  it("only this node's leases, any expiry", () => {
    expect([
      ...leasedHere(
        snap([
          { dataset_id: D, node_uuid: A, expires: 30 },
          { dataset_id: E, node_uuid: B, expires: null },
        ]),
        A,
      ),
    ]).toEqual([D]);
    expect(leasedHere(snap([]), A).size).toBe(0);
  });

  it("a lease here taken or released is worth a turn (the host mount's decision); another node's or its expiry tick is not", () => {
    const none = decisionKey(snap([]), A);
    const held = decisionKey(snap([{ dataset_id: D, node_uuid: A, expires: 30 }]), A);
    expect(held).not.toBe(none);
    expect(decisionKey(snap([{ dataset_id: D, node_uuid: A, expires: 29 }]), A)).toBe(held);
    expect(decisionKey(snap([{ dataset_id: D, node_uuid: B, expires: 30 }]), A)).toBe(none);
  });
});
