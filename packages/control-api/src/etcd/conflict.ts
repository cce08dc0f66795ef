/** Kept apart from the etcd store so the control state does not load the etcd client. */
import type { Configuration } from '../configuration';
import { ApiError } from '../errors';

/** Thrown by a shared store's commit() when another replica committed first; `current` is what it wrote. */
export class StoreConflict extends ApiError {
  constructor(readonly current: Configuration) {
    super(409, 'CONFIGURATION_CONFLICT', `Another control replica changed the configuration first (now v${current.version}).`);
  }
}
