import type { MountEvent, MountEventSource } from '../MountTable';

/** A mount event source the test drives: events by emit(), the table by `mounted`. */
export class FakeMountSource implements MountEventSource {
  readonly mounted = new Set<string>();
  private onEvent: ((e: MountEvent) => void) | undefined;
  private onEnd: ((reason: string) => void) | undefined;
  starts = 0;

  start(onEvent: (e: MountEvent) => void, onEnd: (reason: string) => void): { stop(): void } {
    this.starts++;
    this.onEvent = onEvent;
    this.onEnd = onEnd;
    return { stop: () => (this.onEvent = undefined) };
  }

  isMountPoint(target: string): boolean {
    return this.mounted.has(target);
  }

  emit(action: MountEvent['action'], target: string): void {
    if (action === 'mount') this.mounted.add(target);
    else this.mounted.delete(target);
    this.onEvent?.({ action, target });
  }

  end(reason = 'gone'): void {
    this.onEvent = undefined;
    this.onEnd?.(reason);
  }
}
