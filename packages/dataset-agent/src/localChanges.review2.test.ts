/**
 * Review RT2 (session 15): cases nobody tested.
 * 1. A move when released with the lease released and taken again (a `docker restart` on the source):
 *    the host's mount went while no lease was held; the lease back does not remount the copy under a move
 *    whose final snapshot may be taken (writes after it would be lost), and the primary moved back here
 *    (the plugin's Mount) takes the move back, never mounts while it runs.
 * 2. Two live copies decided from both sides at once: the primary (its copy not mounted) and the other
 *    holder (alive), over every pair of lineages (P, F and an unrelated X; a lineage missing too) and the
 *    opt-in: the pair of decisions is always one of (mount, let go), (retire, wait), (refuse, refuse). Never
 *    both letting go (no live copy left), never the primary serving while the other keeps a copy.
 */
import {
  calculateLocalChanges,
  type CopyLineage,
  type LocalAction,
  type LocalClusterNode,
  type LocalDesiredDataset,
  type LocalObservation,
} from './localChanges';
import { A, B, D, PATH, ctxA, ctxB } from './localChangesTestSupport';

describe('a move when released, the lease released and taken again (docker restart on the source)', () => {
  const toB: LocalDesiredDataset = { datasetId: D, primary: B, maximumSize: 1000, deleted: false };
  const nodes: LocalClusterNode[] = [
    { uuid: A, host: 'a', alive: true, copies: [D] },
    { uuid: B, host: 'b', alive: true, copies: [] },
  ];
  const moving = (mountPoints: string[], leased: boolean): LocalObservation => ({
    copies: [{ datasetId: D, size: 1000, mountPoints }],
    moving: new Set([D]),
    leasedHere: new Set(leased ? [D] : []),
  });

  it('the host mount gone while the lease was released: the lease back does not mount the copy again', () => {
    expect(calculateLocalChanges([toB], nodes, moving([], false), ctxA)).toEqual([]);
    expect(calculateLocalChanges([toB], nodes, moving([], true), ctxA)).toEqual([]);
  });

  it('the primary moved back here (the Mount of the restarted container): the move is taken back, nothing mounted while it runs', () => {
    const back = { ...toB, primary: A };
    for (const mountPoints of [[], [PATH]])
      for (const leased of [false, true])
        expect(calculateLocalChanges([back], nodes, moving(mountPoints, leased), ctxA)).toEqual([
          { kind: 'cancelMove', datasetId: D },
        ]);
  });

  it('the move ended (taken back, or promoted there and retired here): mounted only where the copy is still here', () => {
    const back = { ...toB, primary: A };
    const after = (copies: LocalObservation['copies']): LocalObservation => ({
      copies,
      moving: new Set(),
      leasedHere: new Set([D]),
    });
    expect(calculateLocalChanges([back], nodes, after([{ datasetId: D, size: 1000, mountPoints: [] }]), ctxA)).toEqual([
      { kind: 'mount', datasetId: D, mountPath: PATH },
    ]);
    // Retired here, B's promoted copy live: B pushes it back; this node makes nothing new.
    const bHolds: LocalClusterNode[] = [
      { uuid: A, host: 'a', alive: true, copies: [] },
      { uuid: B, host: 'b', alive: true, copies: [D] },
    ];
    expect(calculateLocalChanges([back], bHolds, { ...after([]), retained: new Set([D]) }, ctxA)).toEqual([]);
  });
});

describe('two live copies: the decisions of both nodes together', () => {
  const ids = [null, 'P', 'F', 'X'];
  const sets: string[][] = [[]];
  for (let k = 0; k < 3; k++)
    for (const s of [...sets])
      for (const x of ['P', 'F', 'X']) if (!s.includes(x) && s.length === k) sets.push([...s, x]);
  const all: (CopyLineage | undefined)[] = [undefined];
  for (const from of ids) for (const sameAs of ids) for (const snapshots of sets) all.push({ from, sameAs, snapshots });
  const both: LocalClusterNode[] = [
    { uuid: A, host: 'a', alive: true, copies: [D] },
    { uuid: B, host: 'b', alive: true, copies: [D] },
  ];
  /** The primary's: mount, retire (its own, older copy) or refuse; the other's: letGo (unmount, retire), wait or refuse. */
  const kind = (actions: LocalAction[], primary: boolean): string => {
    const a = actions[0];
    if (a === undefined) return 'wait';
    return !primary && (a.kind === 'retire' || a.kind === 'unmount') ? 'letGo' : a.kind;
  };

  it(`A the primary (copy not mounted), B holding one: complementary for all ${all.length * all.length * 2} cases`, () => {
    const seen = new Map<string, number>();
    const broken: string[] = [];
    for (const a of all)
      for (const b of all)
        for (const acceptReplicaLoss of [false, true]) {
          const d: LocalDesiredDataset = {
            datasetId: D,
            primary: A,
            maximumSize: 1000,
            deleted: false,
            acceptReplicaLoss,
          };
          const lineages = new Map([
            [
              D,
              new Map<string, CopyLineage>([
                ...(a !== undefined ? [[A, a] as const] : []),
                ...(b !== undefined ? [[B, b] as const] : []),
              ]),
            ],
          ]);
          const on = (mountPoints: string[]): LocalObservation => ({
            copies: [{ datasetId: D, size: 1000, mountPoints }],
            moving: new Set(),
            lineages,
          });
          const onA = kind(calculateLocalChanges([d], both, on([]), ctxA), true);
          // B's copy mounted or not: the first step of letting go is an unmount, then a retire.
          for (const bMounts of [[], [PATH]]) {
            const onB = kind(calculateLocalChanges([d], both, on(bMounts), ctxB), false);
            const pair = `${onA}/${onB}`;
            seen.set(pair, (seen.get(pair) ?? 0) + 1);
            if (!['mount/letGo', 'retire/wait', 'refuse/refuse'].includes(pair))
              broken.push(`${pair}: A ${JSON.stringify(a)} B ${JSON.stringify(b)} opt-in ${acceptReplicaLoss}`);
          }
        }
    expect(broken.slice(0, 5)).toEqual([]);
    // Every kind of outcome is reached (the universe is not degenerate).
    expect([...seen.keys()].sort()).toEqual(['mount/letGo', 'refuse/refuse', 'retire/wait']);
  });
});
