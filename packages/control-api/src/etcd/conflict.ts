/** Kept apart from the etcd store so the control state does not load the etcd client. */
import type { Configuration } from '../configuration';
import { StoreError } from '../errors';

/** Thrown by a shared store's commit() when another replica committed first; `current` is what it wrote. */
export class StoreConflict extends StoreError {
  override readonly name = 'StoreConflict';
  constructor(readonly current: Configuration) {
    super(
      'CONFIGURATION_CONFLICT',
      `Another control replica changed the configuration first (now v${current.version}).`,
    );
  }
}
