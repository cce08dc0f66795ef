/**
 * Bounded label values: a label whose values come from outside (an error code, a Docker method, an HTTP status)
 * must not grow the number of series without limit. Values outside the known set, or beyond the cap of
 * distinct values, become 'other'.
 */
export const OTHER = 'other';

export class LabelBound {
  private readonly seen = new Set<string>();

  /**
   * known: values always accepted. cap: how many further distinct values (matching `shape`) are accepted before
   * every new one is 'other'.
   */
  constructor(
    private readonly known: ReadonlySet<string>,
    private readonly cap = 0,
    private readonly shape: RegExp = /^[A-Za-z0-9_.:-]{1,64}$/,
  ) {}

  value(raw: string | undefined): string {
    if (raw === undefined) return OTHER;
    if (this.known.has(raw) || this.seen.has(raw)) return raw;
    if (this.seen.size < this.cap && this.shape.test(raw)) {
      this.seen.add(raw);
      return raw;
    }
    return OTHER;
  }
}

/** An HTTP status as its class for unknown codes: '200', '404', … known; anything else '2xx'…'5xx'. */
export function statusLabel(status: number): string {
  if (Number.isInteger(status) && status >= 100 && status < 600) {
    return KNOWN_STATUSES.has(status) ? String(status) : `${Math.floor(status / 100)}xx`;
  }
  return OTHER;
}

const KNOWN_STATUSES = new Set([200, 201, 202, 204, 304, 400, 401, 403, 404, 405, 409, 412, 413, 422, 429, 500, 503]);

/** Convergence steps as the metrics name them (the agents' action kinds; others are 'other'). */
export const STEP_KINDS = [
  'create',
  'attach',
  'format',
  'mount',
  'unmount',
  'detach',
  'forceDetach',
  'destroy',
  'resize',
  'move',
  'takeSnapshot',
  'destroySnapshot',
  'restore',
] as const;
export type StepKind = (typeof STEP_KINDS)[number];

/** Volume states an agent reports. */
export const VOLUME_STATES = ['attached', 'mounted', 'detached', 'backoff'] as const;
export type VolumeState = (typeof VOLUME_STATES)[number];
