import { type MountEvent, type MountEventRun, type MountEventSource, MountTable, SOURCE_READY_MS } from '../MountTable';
import { silentLogger } from './backendTestBed';

/**
 * A mount event source the test drives: events by emit(), the table by `mounted`. Its runs say they follow
 * (ready()) once `readyNow` is set; without it only time does (SOURCE_READY_MS). A paused run (as a stopped
 * findmnt) delivers the events emitted meanwhile when resumed.
 */
export class FakeMountSource implements MountEventSource {
  readonly mounted = new Set<string>();
  private onEvent: ((e: MountEvent) => void) | undefined;
  private onEnd: ((reason: string) => void) | undefined;
  private held: MountEvent[] | undefined;
  starts = 0;
  stops = 0;
  pauses = 0;
  readyNow = false;

  start(onEvent: (e: MountEvent) => void, onEnd: (reason: string) => void): MountEventRun {
    this.starts++;
    this.onEvent = onEvent;
    this.onEnd = onEnd;
    this.held = undefined;
    return {
      stop: () => {
        this.stops++;
        this.onEvent = undefined;
      },
      ready: () => this.readyNow,
      pause: () => {
        this.pauses++;
        this.held ??= [];
      },
      resume: () => {
        const held = this.held ?? [];
        this.held = undefined;
        for (const e of held) this.onEvent?.(e);
      },
    };
  }

  /** Whether a run is on (started and neither stopped nor ended). */
  get running(): boolean {
    return this.onEvent !== undefined;
  }

  get paused(): boolean {
    return this.held !== undefined;
  }

  isMountPoint(target: string): boolean {
    return this.mounted.has(target);
  }

  emit(action: MountEvent['action'], target: string): void {
    if (action === 'mount') this.mounted.add(target);
    else this.mounted.delete(target);
    if (this.held !== undefined) this.held.push({ action, target });
    else this.onEvent?.({ action, target });
  }

  end(reason = 'gone'): void {
    this.onEvent = undefined;
    this.onEnd?.(reason);
  }
}

/** A started MountTable at `root` on a new FakeMountSource, already following (its clock past SOURCE_READY_MS). */
export function followedFakeTable(root: string): { src: FakeMountSource; table: MountTable } {
  const src = new FakeMountSource();
  const clock = { ms: 0 };
  const table = new MountTable(root, silentLogger, src, () => clock.ms);
  table.start();
  clock.ms = SOURCE_READY_MS;
  return { src, table };
}

/** The promise's value if it settles within `ms`, else 'pending'. */
export const settledWithin = async <T>(p: Promise<T>, ms: number): Promise<T | 'pending'> =>
  Promise.race([p, new Promise<'pending'>((r) => setTimeout(() => r('pending'), ms))]);
