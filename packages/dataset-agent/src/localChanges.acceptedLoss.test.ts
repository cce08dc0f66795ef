/**
 * RV finding 1 (session 16): a branch between two live copies is resolved for the primary (the other copy kept
 * aside) only where the user accepted that loss: the one-shot opt-in still set, or the control service's
 * accepted-loss marker (clusterhq:flocker:accepted-loss-from, recorded when it removed the consumed opt-in) naming
 * the other holder. Any other branch is refused (TWO_LIVE_COPIES), as before dd198b0.
 */
import { METADATA_ACCEPTED_LOSS_FROM_KEY } from '@flocker/api';
import {
  calculateLocalChanges,
  type CopyLineage,
  dataNodeSettings,
  type LocalClusterNode,
  type LocalDesiredDataset,
  type LocalObservation,
} from './localChanges';
import { A, B, C, ctxA, ctxB, D, PATH } from './localChangesTestSupport';

const nodes = (aAlive = true): LocalClusterNode[] => [
  { uuid: A, host: 'a', alive: aAlive, copies: [D] },
  { uuid: B, host: 'b', alive: true, copies: [D] },
];
const onB = (extra: Partial<LocalDesiredDataset> = {}): LocalDesiredDataset[] => [
  { datasetId: D, primary: B, maximumSize: 1000, deleted: false, ...extra },
];
/** A (the old primary) written after R; B's copy made from R (a promoted replica, or a move's final snapshot). */
const branched = new Map([
  [
    D,
    new Map<string, CopyLineage>([
      [A, { from: null, sameAs: null, snapshots: ['R'] }],
      [B, { from: 'R', sameAs: null, snapshots: ['R'] }],
    ]),
  ],
]);
const observed = (lineages: LocalObservation['lineages'], mountPoints: string[] = []): LocalObservation => ({
  copies: [{ datasetId: D, size: 1000, mountPoints }],
  moving: new Set(),
  lineages,
});
const refused = [expect.objectContaining({ kind: 'refuse', code: 'TWO_LIVE_COPIES' })];

describe('the old primary A (branchedFromMine)', () => {
  it('keeps its copy aside when the marker names it (the opt-in consumed), or while the opt-in is set', () => {
    expect(calculateLocalChanges(onB({ acceptedLossFrom: [A] }), nodes(), observed(branched), ctxA)).toEqual([
      { kind: 'retire', datasetId: D, keepAside: true },
    ]);
    expect(calculateLocalChanges(onB({ acceptedLossFrom: [C, A] }), nodes(), observed(branched), ctxA)).toEqual([
      { kind: 'retire', datasetId: D, keepAside: true },
    ]);
    expect(calculateLocalChanges(onB({ acceptReplicaLoss: true }), nodes(), observed(branched), ctxA)).toEqual([
      { kind: 'retire', datasetId: D, keepAside: true },
    ]);
    // Still mounted here: unmounted first (then kept aside).
    expect(calculateLocalChanges(onB({ acceptedLossFrom: [A] }), nodes(), observed(branched, [PATH]), ctxA)).toEqual([
      { kind: 'unmount', datasetId: D, mountPath: PATH },
    ]);
  });

  it('refuses without either, or with a marker naming only other nodes (writes nobody gave up)', () => {
    for (const d of [
      onB(),
      onB({ acceptedLossFrom: [C] }),
      onB({ acceptedLossFrom: [B] }),
      onB({ acceptDataLoss: true }),
    ])
      expect(calculateLocalChanges(d, nodes(), observed(branched), ctxA)).toEqual(refused);
  });

  it('a marker naming it changes nothing where its copy is not branched: older is retired (not kept aside), newer kept', () => {
    const older = new Map([
      [
        D,
        new Map<string, CopyLineage>([
          [A, { from: null, sameAs: 'R', snapshots: ['R'] }],
          [B, { from: 'R', sameAs: null, snapshots: ['R'] }],
        ]),
      ],
    ]);
    expect(calculateLocalChanges(onB({ acceptedLossFrom: [A] }), nodes(), observed(older), ctxA)).toEqual([
      { kind: 'retire', datasetId: D, unchangedSince: 'R' },
    ]);
    const newer = new Map([
      [
        D,
        new Map<string, CopyLineage>([
          [A, { from: 'R', sameAs: null, snapshots: ['R'] }],
          [B, { from: null, sameAs: 'R', snapshots: ['R'] }],
        ]),
      ],
    ]);
    expect(calculateLocalChanges(onB({ acceptedLossFrom: [A] }), nodes(), observed(newer), ctxA)).toEqual([]);
  });
});

describe('the primary B, its copy not mounted (branchedFromTheirs)', () => {
  it('mounts when the marker names the other holder (alive or dead), or while the opt-in is set', () => {
    for (const alive of [true, false]) {
      for (const d of [onB({ acceptedLossFrom: [A] }), onB({ acceptReplicaLoss: true })])
        expect(calculateLocalChanges(d, nodes(alive), observed(branched), ctxB)).toEqual([
          { kind: 'mount', datasetId: D, mountPath: PATH },
        ]);
    }
  });

  it('refuses without either, or with a marker naming another node', () => {
    for (const alive of [true, false])
      for (const d of [onB(), onB({ acceptedLossFrom: [C] }), onB({ acceptedLossFrom: [B] })])
        expect(calculateLocalChanges(d, nodes(alive), observed(branched), ctxB)).toEqual(refused);
  });
});

describe('dataNodeSettings reads the marker', () => {
  it('as a list of node uuids; absent or empty: none', () => {
    expect(dataNodeSettings({ [METADATA_ACCEPTED_LOSS_FROM_KEY]: `${A}, ${C}` })).toEqual({ acceptedLossFrom: [A, C] });
    expect(dataNodeSettings({ [METADATA_ACCEPTED_LOSS_FROM_KEY]: ' , ' })).toEqual({});
    expect(dataNodeSettings({})).toEqual({});
  });
});
