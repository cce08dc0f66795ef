/**
 * Which of two views of the cluster is newer (issue 23). Pure.
 *
 * The follower can hold a view from one read and receive another from a read that raced it: a
 * refetch (or long-poll answer) and a watch's line each carry the view as it was when written, and
 * either may arrive last. It must never step back to the older one (a decision on it would undo
 * a change already seen, for a moment).
 *
 * The control service's generations are `epoch.cv.sg`: `epoch` is random per process start (and
 * per replica), `cv` its configuration version, `sg` its state generation — both only ever grow
 * within one epoch. Within one epoch the counters order two views. Across epochs nothing does
 * (a restarted service, another replica): the answer to the question asked later wins, as before,
 * so a restart is always adopted. A token of another form (an older or foreign service: the
 * generation is opaque in the API) is ordered by when it was asked for too.
 */

/** A generation of the control service's form, or undefined for any other token. */
export interface GenerationStamp {
  readonly epoch: string;
  readonly cv: number;
  readonly sg: number;
}

export function stampOf(generation: string): GenerationStamp | undefined {
  const m = /^([^.]+)\.(\d+)\.(\d+)$/.exec(generation);
  if (m === null) return undefined;
  const cv = Number(m[2]);
  const sg = Number(m[3]);
  return Number.isSafeInteger(cv) && Number.isSafeInteger(sg) ? { epoch: m[1] as string, cv, sg } : undefined;
}

/**
 * -1: `a` is older than `b`, 1: newer, 0: the same generation, undefined: not comparable (another
 * epoch, or a token of another form).
 */
export function compareGenerations(a: string, b: string): -1 | 0 | 1 | undefined {
  if (a === b) return 0;
  const x = stampOf(a);
  const y = stampOf(b);
  if (x === undefined || y === undefined || x.epoch !== y.epoch) return undefined;
  if (x.cv === y.cv && x.sg === y.sg) return 0;
  if (x.cv <= y.cv && x.sg <= y.sg) return -1;
  if (x.cv >= y.cv && x.sg >= y.sg) return 1;
  // One counter ahead, the other behind: no single service wrote both; take it as another epoch.
  return undefined;
}

/**
 * Whether a view (generation `next`, answering a question asked at `askedAt`) replaces the view
 * held (`held`, asked at `heldAskedAt`; null: none). Within one epoch, by generation — the time asked
 * does not matter there (a watch's line is stamped on arrival, a refetch when asked: either may be
 * the newer view). Otherwise, the question asked later wins.
 */
export function replacesHeld(
  held: { readonly generation: string; readonly askedAt: number } | null,
  next: { readonly generation: string; readonly askedAt: number },
): boolean {
  if (held === null) return true;
  const order = compareGenerations(next.generation, held.generation);
  if (order !== undefined) return order >= 0;
  return next.askedAt >= held.askedAt;
}
