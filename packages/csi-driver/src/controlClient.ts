/**
 * How the CSI driver's FlockerClient asks the control replicas.
 */
import type { FlockerClientOptions } from '@flocker/api';

/**
 * With another replica left to ask, a request safe to repeat moves on after 4 s (FlockerClient failoverTimeoutMs).
 * The CSI sidecars give each controller call 10 s by default (--timeout), the kubelet a NodeStageVolume ~2 min for
 * the driver's 100 s --stage-timeout: with the client's 30 s alone, a frozen replica (stopped, its connections open)
 * first in the list held CreateVolume's first read 30 s, and a long poll begun near the stage deadline ended up to
 * 30 s past it.
 */
export function csiClientOptions(): Pick<FlockerClientOptions, 'failoverTimeoutMs'> {
  return { failoverTimeoutMs: 4_000 };
}
