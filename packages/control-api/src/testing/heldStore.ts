import type { Configuration } from '../configuration';
import { MemoryConfigurationStore } from '../ConfigurationStore';

/** A memory store whose commits wait while `hold()` is in force, until `release()`. */
export class HeldStore extends MemoryConfigurationStore {
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;
  waiting = 0;
  hold(): void {
    this.gate = new Promise((resolve) => (this.open = resolve));
  }
  release(): void {
    this.open?.();
    this.gate = undefined;
  }
  override async commit(config: Configuration): Promise<void> {
    if (this.gate !== undefined) {
      this.waiting += 1;
      await this.gate;
      this.waiting -= 1;
    }
    await super.commit(config);
  }
}
