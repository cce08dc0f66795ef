/**
 * How the container agent's FlockerClient asks the control replicas.
 */
import type { FlockerClientOptions } from '@flocker/api';

/**
 * With another replica left to ask, a request safe to repeat (the turn's reads and long poll, the container report)
 * moves on after one resync interval, at most 5 s and at least 1 s (FlockerClient failoverTimeoutMs). The control
 * service drops a container report 30 s old (CONTAINER_REPORT_STALE_MS): with the client's 30 s timeout alone, a long
 * poll held by a frozen replica (stopped, its connections open) moved on after 30 s plus its wait, and the node's
 * containers vanished from /v1/state/containers meanwhile. Now the next report follows within about two intervals.
 */
export function containerAgentClientOptions(resyncMs: number): Pick<FlockerClientOptions, 'failoverTimeoutMs'> {
  return { failoverTimeoutMs: Math.max(1_000, Math.min(5_000, resyncMs)) };
}
