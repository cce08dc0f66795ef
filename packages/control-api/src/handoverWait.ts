/**
 * The I/O of the lease hand-over (decisions: leaseHandover.ts). A request refused because of a release_on_request
 * lease of a live node records a release request on it (one durable write, published like any lease change: the
 * holder's plugin follows it), waits on the committed configuration (this replica's commits and those it adopts from
 * others: the holder's release or decline may reach any etcd replica) for at most the hand-over wait, then is applied
 * once more and answered as if it came then. A release applied on this replica wakes the waiter before its commit
 * (handoverWake): the request applied again joins that commit, so the grant (and a move to the requester) is durable
 * and pushed with the release, not one commit and one push later (session 22). A release through another replica is
 * seen once committed there (adopted here), and the request is then committed on its own. No polling; when it ends nothing is left behind (its listener and timer
 * go, a client gone ends it at once). The request on the lease may stay: harmless, the holder lets go of an idle
 * lease, which is what was asked, and a kill -9 of the service leaves it as any other committed lease.
 */
import { type Applied, type Configuration, configurationTag } from './configuration';
import type { ControlState } from './ControlState';
import { ConfigurationError } from './errors';
import {
  handoverCandidate,
  type HandoverOutcome,
  handoverProgress,
  handoverWake,
  refusalAfterHandover,
  type Requester,
  requestRelease,
  unchangedButLease,
} from './leaseHandover';
import type { LeaseReleaseRequest } from '@flocker/api';

export interface HandoverAsk {
  readonly datasetId: string;
  /** The node asking (its lease; a move or delete through its certificate), or "api". */
  readonly requester: Requester;
  /** The request's X-If-Configuration-Matches. */
  readonly ifMatches: string | undefined;
  /** Aborted when the client goes away. */
  readonly signal: AbortSignal;
  /**
   * Authorizes the request again (throws FORBIDDEN): its rules read leases and primaries the wait may have changed
   * (authorization.ts), so it is judged on the configuration its second application sees. Absent: not authorized.
   */
  readonly authorize?: (() => void) | undefined;
  /**
   * Whether a holder node's plugin sees release requests (the views it follows carry release_requested): a holder
   * that cannot is not asked, the request is refused at once as for a plain lease (leaseHandover.handoverCandidate).
   */
  readonly canHear: (node: string) => boolean;
}

/**
 * `change` applied as the request's write (state.mutate), with the lease hand-over around it: a LEASE_HELD refusal
 * whose lease its live holder promised to let go of becomes a release request, a wait, and one more application.
 * The request's condition (If-Configuration-Matches) still holds on the second application when nothing but that
 * lease changed meanwhile (the hand-over's own writes); otherwise it is answered 412 as usual.
 */
export async function mutateWithHandover<T>(
  state: ControlState,
  ask: HandoverAsk,
  change: (config: Configuration, now: number) => Applied<T>,
): Promise<Applied<T>> {
  try {
    return await state.mutate(change, ask.ifMatches);
  } catch (refusal) {
    if (!(refusal instanceof ConfigurationError) || refusal.code !== 'LEASE_HELD') throw refusal;
    // --handover-wait 0: refused at once, as before the hand-over.
    if (state.handoverWaitMs <= 0) throw refusal;
    const seen = state.latestConfiguration;
    const now = state.now();
    const lease = handoverCandidate(
      seen,
      ask.datasetId,
      ask.requester,
      now,
      (node) => state.deadSince(node, now) !== undefined,
      ask.canHear,
    );
    if (lease === undefined) throw refusal;
    // The configuration the request's condition held on (refused just now, so still the latest unless a write
    // slipped in: then the condition is judged as usual).
    const conditionOn = ask.ifMatches !== undefined && configurationTag(seen) === ask.ifMatches ? seen : undefined;
    const holder = lease.node_uuid;
    const recorded = await state.mutate((c, at) =>
      requestRelease(c, ask.datasetId, holder, ask.requester, new Date(at).toISOString(), at),
    );
    const request = recorded.result;
    const asked = { dataset_id: ask.datasetId, holder, by: ask.requester };
    state.logger.info('lease hand-over: asked the holder to let go of the lease', asked);
    const t0 = Date.now();
    const outcome =
      request === undefined ? 'gone' : await waitForHandover(state, ask.datasetId, holder, request, ask.signal);
    // Nobody to answer: the request stays on the lease (harmless: an idle lease let go of is what was asked).
    const ended = ask.signal.aborted ? 'client gone' : outcome;
    state.logger.info('lease hand-over: the wait ended', { ...asked, outcome: ended, wait_ms: Date.now() - t0 });
    if (ask.signal.aborted) throw refusal;
    const latest = state.latestConfiguration;
    const ifMatches =
      ask.ifMatches === undefined
        ? undefined
        : conditionOn !== undefined && unchangedButLease(conditionOn, latest, ask.datasetId)
          ? configurationTag(latest)
          : ask.ifMatches;
    try {
      // In the same turn as the mutate: check and change see the same configuration.
      ask.authorize?.();
      return await state.mutate(change, ifMatches);
    } catch (again) {
      throw refusalAfterHandover(
        again,
        state.latestConfiguration,
        ask.datasetId,
        holder,
        outcome,
        state.handoverWaitMs,
        state.now(),
        (node) => hostOf(state, node),
      );
    }
  }
}

function hostOf(state: ControlState, node: string): string | undefined {
  return state.reportedNode(node)?.report.host ?? state.configuration.nodes.get(node)?.host;
}

/**
 * Resolves when the holder let go of the lease (or it ended), declined, or after the hand-over wait; at once when
 * the client goes away or the service closes (as 'timeout': the caller then answers nothing, or SHUTTING_DOWN).
 */
function waitForHandover(
  state: ControlState,
  datasetId: string,
  holder: string,
  request: LeaseReleaseRequest,
  signal: AbortSignal,
): Promise<HandoverOutcome> {
  const progress = (config: Configuration) => handoverProgress(config, datasetId, holder, request, state.now());
  const first =
    handoverWake('committed', progress(state.configuration)) ??
    handoverWake('applied', progress(state.latestConfiguration));
  if (first !== undefined) return Promise.resolve(first);
  if (signal.aborted) return Promise.resolve('timeout');
  return new Promise<HandoverOutcome>((resolve) => {
    let ended = false;
    const finish = (outcome: HandoverOutcome): void => {
      if (ended) return;
      ended = true;
      clearTimeout(timer);
      unsubscribe();
      unsubscribeLatest();
      signal.removeEventListener('abort', gone);
      resolve(outcome);
    };
    const gone = (): void => finish('timeout');
    const unsubscribe = state.onConfiguration((config, closing) => {
      const now = handoverWake('committed', progress(config));
      if (now !== undefined) finish(now);
      else if (closing) finish('timeout');
    });
    // The holder's release applied on this replica: the caller's change is applied again in this turn (only
    // microtasks between this resolve and its mutate), so it joins the release's commit.
    const unsubscribeLatest = state.onLatestConfiguration((latest) => {
      const now = handoverWake('applied', progress(latest));
      if (now !== undefined) finish(now);
    });
    const timer = setTimeout(() => finish('timeout'), state.handoverWaitMs);
    signal.addEventListener('abort', gone);
  });
}
