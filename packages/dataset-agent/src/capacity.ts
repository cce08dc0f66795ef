/** What the agent reports of its backend's free capacity (issue 19: the CSI driver's GetCapacity). */
import { MINIMUM_DATASET_SIZE } from '@flocker/api';

/**
 * Free bytes are reported rounded down to this step (Flocker's smallest volume): every write
 * into a thin volume changes the exact figure, and each changed report wakes every watcher of
 * the control service, while no decision needs it finer than one smallest volume.
 */
export const AVAILABLE_BYTES_STEP = MINIMUM_DATASET_SIZE;

/** The figure to report for `bytes` free: rounded down to the step; undefined for no usable figure. */
export function reportedAvailableBytes(bytes: number | undefined, step = AVAILABLE_BYTES_STEP): number | undefined {
  if (bytes === undefined || !Number.isFinite(bytes) || bytes < 0) return undefined;
  return Math.min(Math.floor(bytes / step) * step, Math.floor(Number.MAX_SAFE_INTEGER / step) * step);
}
