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
import { type Applied, type Configuration, configurationTag, type StoredLease } from './configuration';
import type { ControlState } from './ControlState';
import { ConfigurationError } from './errors';
import {
  type HandoverOutcome,
  type HandoverStep,
  handoverStep,
  handoverProgress,
  handoverWake,
  refusalAfterHandover,
  refusalUnheard,
  refusalUnreported,
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
   * that cannot is not asked, the request is refused at once as for a plain lease (leaseHandover.handoverStep) —
   * unless its node has not reported since this start: the request waits for it to (waitForReport).
   */
  readonly canHear: (node: string) => boolean;
}

/**
 * `change` applied as the request's write (state.mutate), with the lease hand-over around it: a LEASE_HELD refusal
 * whose lease its live holder promised to let go of becomes a release request, a wait, and one more application.
 * The request's condition (If-Configuration-Matches) still holds on the second application when nothing but that
 * lease changed meanwhile (the hand-over's own writes); otherwise it is answered 412 as usual. A holder that has not
 * reported since this service started (handoverStep 'await-report': right after a restart) is waited for first
 * (waitForReport), then asked: both waits share one budget, the hand-over wait (the hand-over gets what the report
 * wait left), so a request waits at most the hand-over wait in all (--handover-wait's maximum is sized to the
 * clients' request timeout; review s28 G2).
 */
export async function mutateWithHandover<T>(
  state: ControlState,
  ask: HandoverAsk,
  change: (config: Configuration, now: number) => Applied<T>,
): Promise<Applied<T>> {
  try {
    return await state.mutate(change, ask.ifMatches);
  } catch (first) {
    if (!(first instanceof ConfigurationError) || first.code !== 'LEASE_HELD') throw first;
    // --handover-wait 0: refused at once, as before the hand-over.
    if (state.handoverWaitMs <= 0) throw first;
    let refusal: ConfigurationError = first;
    let ifMatches = ask.ifMatches;
    let seen = state.latestConfiguration;
    let step = stepOf(state, ask, seen);
    // One budget for the whole request: the report wait and the hand-over wait together (review s28 G2).
    const deadline = performance.now() + state.handoverWaitMs;
    let handoverMs = state.handoverWaitMs;
    if (step.do === 'await-report') {
      // Right after a restart the holder has not reported yet (leaseHandover.handoverStep): wait for it to, or for
      // the lease to change, then apply the request again; past the hand-over wait, say why it is refused.
      const holder = step.lease;
      const conditionOn = ask.ifMatches !== undefined && configurationTag(seen) === ask.ifMatches ? seen : undefined;
      const asked = { dataset_id: ask.datasetId, holder: holder.node_uuid, by: ask.requester };
      state.logger.info('lease hand-over: waiting for the holder to report since this start', asked);
      const t0 = Date.now();
      const outcome = await waitForReport(state, ask, holder, deadline);
      const waitedMs = Date.now() - t0;
      state.logger.info('lease hand-over: the wait for the holder to report ended', {
        ...asked,
        outcome: ask.signal.aborted ? 'client gone' : outcome,
        wait_ms: waitedMs,
      });
      if (ask.signal.aborted) throw refusal;
      if (outcome === 'timeout') throw refusalUnreported(refusal, holder, waitedMs, hostOf(state, holder.node_uuid));
      // 'changed', or 'ended' early by the service closing or this replica losing its store: applied again, the
      // request is answered as the normal path answers then (503 SHUTTING_DOWN / STORE_UNAVAILABLE: clients ask
      // another replica), not refused as if the holder were the reason (review s28 G1).
      ifMatches = conditionAfterWait(ask, conditionOn, state.latestConfiguration);
      try {
        ask.authorize?.();
        return await state.mutate(change, ifMatches);
      } catch (again) {
        if (!(again instanceof ConfigurationError) || again.code !== 'LEASE_HELD') throw again;
        refusal = again;
      }
      seen = state.latestConfiguration;
      step = stepOf(state, ask, seen);
      if (outcome === 'ended' && step.do === 'await-report')
        throw refusalUnreported(refusal, step.lease, waitedMs, hostOf(state, step.lease.node_uuid));
      handoverMs = Math.max(0, Math.round(deadline - performance.now()));
    }
    // After the wait for a report, a holder still unheard is refused as one that cannot hear (waited once).
    if (step.do === 'refuse' && step.unheard !== undefined) throw refusalUnheard(refusal);
    if (step.do !== 'ask') throw refusal;
    const lease = step.lease;
    // The configuration the request's condition held on (refused just now, so still the latest unless a write
    // slipped in: then the condition is judged as usual).
    const conditionOn = ifMatches !== undefined && configurationTag(seen) === ifMatches ? seen : undefined;
    const holder = lease.node_uuid;
    const recorded = await state.mutate((c, at) =>
      requestRelease(c, ask.datasetId, holder, ask.requester, new Date(at).toISOString(), at),
    );
    const request = recorded.result;
    const asked = { dataset_id: ask.datasetId, holder, by: ask.requester };
    state.logger.info('lease hand-over: asked the holder to let go of the lease', asked);
    const t0 = Date.now();
    const outcome =
      request === undefined
        ? 'gone'
        : await waitForHandover(state, ask.datasetId, holder, request, ask.signal, handoverMs);
    // Nobody to answer: the request stays on the lease (harmless: an idle lease let go of is what was asked).
    const ended = ask.signal.aborted ? 'client gone' : outcome;
    state.logger.info('lease hand-over: the wait ended', { ...asked, outcome: ended, wait_ms: Date.now() - t0 });
    if (ask.signal.aborted) throw refusal;
    const condition = conditionAfterWait(
      { ifMatches, datasetId: ask.datasetId },
      conditionOn,
      state.latestConfiguration,
    );
    try {
      // In the same turn as the mutate: check and change see the same configuration.
      ask.authorize?.();
      return await state.mutate(change, condition);
    } catch (again) {
      throw refusalAfterHandover(
        again,
        state.latestConfiguration,
        ask.datasetId,
        holder,
        outcome,
        handoverMs,
        state.now(),
        (node) => hostOf(state, node),
      );
    }
  }
}

/** handoverStep on `config` as this replica knows the nodes now. */
function stepOf(state: ControlState, ask: HandoverAsk, config: Configuration): HandoverStep {
  const now = state.now();
  return handoverStep(
    config,
    ask.datasetId,
    ask.requester,
    now,
    (node) => state.deadSince(node, now) !== undefined,
    ask.canHear,
    // A report read from the store at this start (etcd) is not one: heardSinceStart.
    (node) => state.reportedNode(node)?.heardSinceStart === true,
  );
}

/**
 * The request's condition (If-Configuration-Matches) for its application after a wait: it still holds when nothing
 * but the dataset's lease changed since `conditionOn` (the configuration it held on), else it is judged as sent.
 */
function conditionAfterWait(
  ask: Pick<HandoverAsk, 'ifMatches' | 'datasetId'>,
  conditionOn: Configuration | undefined,
  latest: Configuration,
): string | undefined {
  if (ask.ifMatches === undefined) return undefined;
  return conditionOn !== undefined && unchangedButLease(conditionOn, latest, ask.datasetId)
    ? configurationTag(latest)
    : ask.ifMatches;
}

/**
 * Resolves 'changed' once the request's handoverStep is no longer 'await-report' on `holder`'s lease (the holder
 * reported, the lease changed or went, the holder was declared dead), 'timeout' at `deadline` (performance.now()) or
 * when the client goes away, 'ended' when woken early with nothing changed (the service closing, the notifier
 * released: this replica lost its store). Woken by the change notifier (node reports and configuration changes
 * alike: its generation counts both), nothing polled; nothing left behind.
 */
/**
 * How early the wait's own timer may wake it against `performance.now()`: libuv counts timers in whole milliseconds on
 * a clock it reads once per loop turn, so a wait woken by its timeout can find up to ~1 ms left. Woken with nothing
 * changed that close to the deadline is the deadline, not the store lost ('ended' applied the request once more and
 * logged the wrong outcome: a CI run, wait_ms 4999 of 5000).
 */
const TIMER_SLACK_MS = 5;

async function waitForReport(
  state: ControlState,
  ask: HandoverAsk,
  holder: StoredLease,
  deadline: number,
): Promise<'changed' | 'timeout' | 'ended'> {
  const stop = new AbortController();
  const end = (): void => stop.abort();
  ask.signal.addEventListener('abort', end);
  const unsubscribe = state.onConfiguration((_config, closing) => {
    if (closing) end();
  });
  try {
    for (;;) {
      const step = stepOf(state, ask, state.latestConfiguration);
      if (step.do !== 'await-report' || step.lease.node_uuid !== holder.node_uuid) return 'changed';
      const left = deadline - performance.now();
      if (left <= 0 || ask.signal.aborted) return 'timeout';
      if (stop.signal.aborted) return 'ended';
      const since = state.generation;
      await state.waitForChange(since, left, stop.signal);
      // Woken with nothing changed: the wait's end, the client gone, or the notifier closed or released (the store
      // stopped answering): never waited on again (a closed notifier answers at once, which would spin).
      if (state.generation === since) {
        if (ask.signal.aborted || deadline - performance.now() <= TIMER_SLACK_MS) return 'timeout';
        return 'ended';
      }
    }
  } finally {
    unsubscribe();
    ask.signal.removeEventListener('abort', end);
  }
}

function hostOf(state: ControlState, node: string): string | undefined {
  return state.reportedNode(node)?.report.host ?? state.configuration.nodes.get(node)?.host;
}

/**
 * Resolves when the holder let go of the lease (or it ended), declined, or after `waitMs` (what is left of the
 * request's hand-over wait); at once when
 * the client goes away or the service closes (as 'timeout': the caller then answers nothing, or SHUTTING_DOWN).
 */
function waitForHandover(
  state: ControlState,
  datasetId: string,
  holder: string,
  request: LeaseReleaseRequest,
  signal: AbortSignal,
  waitMs: number,
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
    const timer = setTimeout(() => finish('timeout'), waitMs);
    signal.addEventListener('abort', gone);
  });
}
