/**
 * A BackendTestBed per test (started in beforeEach, closed in afterEach) and a test clock that runs
 * `skew` ms ahead of Date.now (0 at each test's start), for the plugin's mount-safety window tests.
 */
import type { FlockerClient } from '@flocker/api';
import type { FlockerVolumeBackend } from '../FlockerVolumeBackend';
import { BackendTestBed, type FakeNode } from './backendTestBed';

export class ClockedBed {
  /** How far the test clock is ahead of Date.now (ms). */
  skew = 0;
  current: BackendTestBed | undefined;

  constructor(
    private readonly node: string,
    private readonly mountSafetyWindowMs: number,
  ) {}

  readonly now = (): number => Date.now() + this.skew;

  get bed(): BackendTestBed {
    if (this.current === undefined) throw new Error('no bed outside a test');
    return this.current;
  }

  get client(): FlockerClient {
    return this.bed.client;
  }

  /** A backend of `node` with the mount-safety window on the test clock. */
  readonly backend = (): Promise<FlockerVolumeBackend> =>
    this.bed.backend(this.node, { mountSafetyWindowMs: this.mountSafetyWindowMs, now: this.now });
}

/** Registers the bed's beforeEach and afterEach (agents unpaused before the close) in the calling describe. */
export function useClockedBed(
  tmpPrefix: string,
  hosts: readonly FakeNode[],
  node: string,
  mountSafetyWindowMs: number,
): ClockedBed {
  const t = new ClockedBed(node, mountSafetyWindowMs);
  beforeEach(async () => {
    t.skew = 0;
    t.current = await BackendTestBed.start(tmpPrefix, hosts);
  });
  afterEach(async () => {
    const bed = t.current;
    t.current = undefined;
    if (bed === undefined) return;
    for (const a of bed.agents) a.paused = false;
    await bed.close();
  });
  return t;
}
