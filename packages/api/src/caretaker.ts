/**
 * Who takes care of (destroys) what no node that sees it can (issue 23): the pure rule the control
 * service's node views follow (control-api orphanViews.ts keeps it incrementally) and the agents'
 * in-memory control service mirrors in its tests — one rule for both, here since the agent may not
 * import the service.
 *
 * A dataset is in the view of its primary, of the live nodes holding it, and of its caretaker. Two kinds
 * of leftovers need a caretaker, one live node whose backend holds them:
 *
 * - an orphan: a deleted dataset whose primary is not alive and that no live node holds — its volume
 *   (and its deleted snapshots) are in some pool, reported by live nodes sharing it;
 * - a stranded snapshot: a snapshot deleted in the configuration that live nodes report in their backend
 *   listing but no live node whose view has the dataset does (its primary is dead, or its primary's and
 *   holders' backends are another pool). The agent destroys a snapshot only while deciding about its
 *   dataset (snapshotChanges.ts), so without a caretaker nobody would.
 *
 * The agents choose which of the nodes deciding about a dataset destroys a deleted snapshot by the same
 * viewers (dataset-agent snapshotDestroyer: the live primary if it holds it, else the lowest uuid among
 * itself and the live holders holding it — so the caretaker itself, as then none of them holds it); a node
 * in a view only for another dataset or as a witness does not count: it never decides about this one.
 *
 * The caretaker is the reporter with the highest rendezvous hash of (dataset, node), so it moves only when
 * that node dies or stops reporting; none once nothing is left to destroy.
 */

/** FNV-1a (32 bits) of a string: the rendezvous hash (stable across processes and versions). */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** The caretaker among `candidates` (rendezvous: highest hash of dataset/node, ties to the lowest uuid). */
export function caretakerAmong(datasetId: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestScore = -1;
  for (const node of candidates) {
    const score = fnv1a(`${datasetId}/${node}`);
    if (score > bestScore || (score === bestScore && best !== undefined && node < best)) {
      best = node;
      bestScore = score;
    }
  }
  return best;
}

/** What decides whether a dataset needs a caretaker, and who. */
export interface OrphanFacts {
  readonly deleted: boolean;
  readonly primary: string;
  /** Nodes holding it (a manifestation, or its volume attached to their own instance). */
  readonly holders: Iterable<string>;
  /** Nodes reporting a volume of it in their backend listing (report.volumes). */
  readonly reporters: Iterable<string>;
  /** For each of its snapshots deleted in the configuration, the nodes reporting it (report.snapshots). */
  readonly deletedSnapshots?: Iterable<Iterable<string>>;
}

/**
 * The live node that must take care of the dataset, or undefined when none must.
 *
 * An orphan (deleted, primary not alive, no live holder): among the live nodes reporting its volume or a
 * deleted snapshot of it, so the caretaker does not move when the volume goes before the snapshots.
 * Otherwise its live primary and live holders see it: a caretaker only for the deleted snapshots live
 * nodes report but none of those does (stranded), among the live nodes reporting them.
 */
export function caretakerOf(
  datasetId: string,
  facts: OrphanFacts | undefined,
  alive: (node: string) => boolean,
): string | undefined {
  if (facts === undefined) return undefined;
  const viewers = new Set<string>();
  if (alive(facts.primary)) viewers.add(facts.primary);
  for (const h of facts.holders) if (alive(h)) viewers.add(h);
  const live: string[] = [];
  if (facts.deleted && viewers.size === 0) {
    for (const r of facts.reporters) if (alive(r)) live.push(r);
    for (const reporters of facts.deletedSnapshots ?? []) for (const r of reporters) if (alive(r)) live.push(r);
    return caretakerAmong(datasetId, live);
  }
  for (const reporters of facts.deletedSnapshots ?? []) {
    const liveReporters = [...reporters].filter(alive);
    if (!liveReporters.some((r) => viewers.has(r))) live.push(...liveReporters);
  }
  return caretakerAmong(datasetId, live);
}

/**
 * The witness of a dataset no live node holds (not deleted): one live node reporting a volume of it,
 * whose state its viewers' views show, so that its primary, about to create a volume, sees one that
 * exists in another pool (the agent's VOLUME_ELSEWHERE refusal). Rendezvous like the caretaker.
 */
export function witnessOf(
  datasetId: string,
  facts: Omit<OrphanFacts, 'primary' | 'deletedSnapshots'> | undefined,
  alive: (node: string) => boolean,
): string | undefined {
  if (facts === undefined || facts.deleted) return undefined;
  for (const h of facts.holders) if (alive(h)) return undefined;
  const live: string[] = [];
  for (const r of facts.reporters) if (alive(r)) live.push(r);
  return caretakerAmong(datasetId, live);
}
