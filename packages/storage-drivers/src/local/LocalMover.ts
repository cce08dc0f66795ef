/**
 * Runs one move of a local dataset from this node to a target node (see plan.ts for the
 * decisions). Every step is decided afresh from the snapshots both sides hold, so a dropped
 * connection, a killed target or a killed mover is resumed from the newest snapshot the target
 * has: the mover retries (with backoff) and a new mover process simply starts again.
 */
import { backoffDelay, errorMessage, sleep } from '@flocker/runtime';
import type winston from 'winston';
import {
  ConnectionLostError,
  isLocalStorageError,
  LocalStorageError,
  SourceChangedAfterPromoteError,
  type LocalEngine,
} from './engine';
import {
  DEFAULT_MOVE_POLICY,
  DEFAULT_KEEP_SOURCE_SNAPSHOTS,
  changedStreak,
  finalVerdict,
  SOURCE_CHANGING_ROUNDS,
  type FinalVerdict,
  nextMoveStep,
  sourceSnapshotsToPrune,
  type MoveFacts,
  type MovePolicy,
  type SnapshotRef,
} from './plan';
import type { TargetApi } from './transfer';

export type MovePhase = 'copying' | 'waitingForRelease' | 'final' | 'promoting' | 'done';

export interface MoveProgress {
  readonly phase: MovePhase;
  /** Sends completed in this run. */
  readonly rounds: number;
  /** Bytes of stream sent in this run (all rounds). */
  readonly bytesSent: number;
  /** The dataset's referenced bytes on the source when the move began (a full send's rough size). */
  readonly bytesTotal: number;
  /** Bytes of the send in progress. */
  readonly currentSendBytes: number;
}

export interface LocalMoveOptions {
  readonly engine: LocalEngine;
  readonly target: TargetApi;
  readonly datasetId: string;
  /** The dataset's size limit, given to the target's copy. */
  readonly size: number;
  /** Whether the target mounts its copy at once when promoted (at its own path for the dataset). */
  readonly targetMounts?: boolean;
  /** Whether the source has let go (default: no mount of the dataset in any mount namespace of this host). */
  readonly released?: () => Promise<boolean>;
  readonly policy?: MovePolicy;
  /** How often to look for the release while waiting (ms). */
  readonly releasePollMs?: number;
  /** While waiting for the release, a catch-up round this often, so the final delta stays small (ms). */
  readonly catchUpMs?: number;
  /** Failures in a row before giving up (default 20), with backoff between; a target not reached is not counted. */
  readonly maxAttempts?: number;
  /**
   * How long a target that refuses, resets or drops every connection (a node restarting, killed,
   * cut off) is waited for, retried with backoff, before giving up (default 10 minutes).
   */
  readonly maxUnreachableMs?: number;
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
  /** Remove the source's copy after the target mounted (default true; false keeps it and every snapshot). */
  readonly destroySource?: boolean;
  /**
   * Of the source's move snapshots, how many it keeps after the target mounted (the newest up to
   * the final one; default 1: the final, a move back's base; 0: none, the old copy goes entirely).
   */
  readonly keepSourceSnapshots?: number;
  readonly onProgress?: (p: MoveProgress) => void;
  /** Told of each snapshot the target kept. */
  readonly onSent?: (sent: { name: string; parent: string | null; bytes: number; released: boolean }) => void;
  /** Told when the target finished writing out what it received after a send before the release (ok: it did). */
  readonly onSettled?: (settled: { name: string; ok: boolean; ms: number }) => void;
  /** Told of each failed step before it is retried. */
  readonly onRetry?: (error: string, attempt: number) => void;
  /**
   * Review RV4 finding 3: told, from SOURCE_CHANGING_ROUNDS "changed" verdicts in a row on, that something
   * keeps changing the released source after each final snapshot (the move copies on, the volume
   * unavailable meanwhile); told null once that ends (a promote, or the source in use again).
   */
  readonly onSourceChanging?: (
    warning: { readonly code: 'SOURCE_WRITTEN_UNSEEN'; readonly message: string } | null,
  ) => void;
  /** Progress during a send at most this often (ms, default 250). */
  readonly progressIntervalMs?: number;
  readonly logger?: winston.Logger;
  readonly signal?: AbortSignal;
  /**
   * Ends the move at once, a send under way too (its stream aborted: the target discards the partial
   * receive). The dataset was deleted: nothing of the move is wanted any more. Give it in `signal` too
   * (the waits and back-offs end on that).
   */
  readonly stop?: AbortSignal;
  /**
   * Takes the move back (the dataset's primary is this node again): honoured until the promote is
   * asked for (the final snapshot taken or sent too: the target holds received snapshots only, no
   * live copy), never after (the target may hold the primary copy); ends with TRANSFER_FAILED.
   */
  readonly cancel?: AbortSignal;
  /**
   * Test only (e2e: a source killed between the target's promote and its own retire): called once
   * the target has promoted, before the clean-up.
   */
  readonly afterPromote?: () => void | Promise<void>;
  /**
   * Test only (e2e: a move taken back after the promote was asked for, seen by the target first):
   * called once, right before the first promote is asked for (promoteAsked already set).
   */
  readonly beforePromote?: () => void | Promise<void>;
}

export interface MoveResult {
  readonly finalSnapshot: string;
  readonly rounds: readonly number[];
  readonly bytesSent: number;
  /** From the release seen to the target's copy promoted (and mounted): the time the data was unavailable. */
  readonly unavailableMs: number;
}

export async function moveLocalDataset(o: LocalMoveOptions): Promise<MoveResult> {
  const { engine, target, datasetId, logger } = o;
  const policy = o.policy ?? DEFAULT_MOVE_POLICY;
  const released = o.released ?? (async () => !(await engine.inUse(datasetId)));
  const live = (await engine.listDatasets()).find((d) => d.datasetId === datasetId);
  if (live === undefined) throw new LocalStorageError('UNKNOWN_DATASET', `no dataset ${datasetId} on this node`);
  let rounds: number[] = [];
  const allRounds: number[] = [];
  let finalSnapshot: string | null = null;
  let targetPromoted = false;
  let promoteAsked = false;
  /**
   * The last promote asked for was answered with a refusal, and none asked before can still run on
   * the target (each was answered too): the target made no live copy of this run's unless its
   * status shows one (a promote that failed part way).
   */
  let promoteRefused = false;
  /** A promote of this run may still run on the target (its answer lost: a dropped connection, no answer in time). */
  let promoteUnanswered = false;
  let bytesSent = 0;
  let failures = 0;
  /** Failures since the last step done, the target not reached excepted (those count by time). */
  let countedFailures = 0;
  let unreachableSince: number | null = null;
  let releasedAt: number | null = null;
  let unavailableMs = 0;
  let waitingSince: number | null = null;
  let phase: MovePhase = 'copying';
  let bytesTotal = live.usedBytes;
  let reportedAt = 0;
  // During a send, at most every progressIntervalMs; every change of phase or round at once.
  const progress = (current?: number): void => {
    const now = performance.now();
    if (current !== undefined && now - reportedAt < (o.progressIntervalMs ?? 250)) return;
    reportedAt = now;
    o.onProgress?.({
      phase,
      rounds: allRounds.length,
      bytesSent: bytesSent + (current ?? 0),
      bytesTotal,
      currentSendBytes: current ?? 0,
    });
  };

  let known: { source: SnapshotRef[]; target: SnapshotRef[]; targetLive: boolean } | null = null;
  /** The release looked at again once the final snapshot is taken, during its send (awaited before the promote). */
  let recheck: Promise<boolean> | null = null;
  /** "changed" verdicts in a row (changedStreak); reported once it reaches SOURCE_CHANGING_ROUNDS. */
  let streak = 0;
  const streakAfter = (verdict: FinalVerdict): void => {
    const before = streak;
    streak = changedStreak(streak, verdict);
    if (streak >= SOURCE_CHANGING_ROUNDS)
      o.onSourceChanging?.({
        code: 'SOURCE_WRITTEN_UNSEEN',
        message:
          `dataset ${datasetId} is released on this node, but its copy changed after each of the last ${streak} final snapshots: ` +
          'something this node cannot see keeps changing it (a process writing through a file it kept open past an unmount, ' +
          'a container whose mount namespace the scan cannot read), or the pool rewrites it (btrfs balance, defragment or ' +
          'autodefrag, a reader updating access times, a backup walking the pool). The move copies on and the volume stays ' +
          'unavailable until it stops: find it (fuser -vm or lsof on the pool, btrfs balance status) and stop it, or move the ' +
          'primary back to this node',
      });
    else if (before >= SOURCE_CHANGING_ROUNDS) o.onSourceChanging?.(null);
  };
  // A function, not the property inline: TypeScript would keep the loop's check's narrowing across the awaits.
  const stopped = (): boolean => o.signal?.aborted === true;
  for (;;) {
    if (stopped()) throw new LocalStorageError('TRANSFER_FAILED', 'the move was stopped');
    try {
      // Both sides' snapshots are looked at at the start and after a failure; in between, this run's
      // own steps are the only change to them (kept in `known`), which spares the final phase its
      // round trips and processes. Once the final snapshot is taken the release is looked at only
      // once more, right before the first promote.
      known ??= await lookAtBoth(o);
      const { source } = known;
      if (o.cancel?.aborted === true && !promoteAsked)
        throw new LocalStorageError('TRANSFER_FAILED', 'the move was taken back before the promote');
      // Taken back after the promote was asked for, which the target refused (it saw the move back
      // first: not the primary any more), and the target shows no live copy (looked at after that
      // refusal: `known` is looked at again after every failure): nothing there is the primary's and
      // nothing of this run can still make one, so the source's copy stays the live one. Retrying the
      // refusal kept the copy unmounted for about a minute (a container's Mount there waited).
      if (o.cancel?.aborted === true && promoteRefused && !promoteUnanswered && !known.targetLive)
        throw new MoveTakenBackError(
          'the move was taken back after its promote was asked for: the target refused it and holds no live copy',
        );
      const isReleased = finalSnapshot !== null || (await released());
      if (isReleased && releasedAt === null) releasedAt = performance.now();
      // Written to again (the release was taken back): phase 1 again, and a new final snapshot later.
      if (!isReleased) {
        releasedAt = null;
        finalSnapshot = null;
        recheck = null;
        if (streak >= SOURCE_CHANGING_ROUNDS) o.onSourceChanging?.(null);
        streak = 0;
      }
      const facts: MoveFacts = {
        source,
        target: known.target,
        released: isReleased,
        rounds,
        finalSnapshot,
        targetPromoted,
        targetLive: known.targetLive,
        promoteAsked,
      };
      const step = nextMoveStep(facts, policy);
      logger?.debug('move step', { datasetId, step });
      switch (step.kind) {
        case 'snapshot': {
          const taken = await engine.createSnapshot(datasetId, step.name);
          known.source.push({ name: taken.name, identity: taken.identity });
          if (step.final) finalSnapshot = step.name;
          waitingSince = null;
          break;
        }
        case 'send': {
          phase = isReleased ? 'final' : 'copying';
          // Released, this is the final snapshot's send: the look before the promote runs beside it
          // (taken after the snapshot, which is what it must be), not in the unavailable window.
          if (isReleased && !promoteAsked) {
            recheck = released();
            recheck.catch(() => undefined);
          }
          if (allRounds.length === 0)
            bytesTotal = (await engine.listDatasets()).find((d) => d.datasetId === datasetId)?.usedBytes ?? bytesTotal;
          const sent = await sendOne(o, step.name, step.parent, source, (n) => progress(n));
          const identity = source.find((x) => x.name === step.name)?.identity;
          if (identity !== undefined) known.target.push({ name: step.name, identity });
          bytesSent += sent;
          allRounds.push(sent);
          if (!isReleased) rounds = [...rounds, sent];
          o.onSent?.({ name: step.name, parent: step.parent, bytes: sent, released: isReleased });
          logger?.info('sent a snapshot', {
            datasetId,
            name: step.name,
            parent: step.parent,
            bytes: sent,
            released: isReleased,
          });
          progress();
          if (!isReleased) await settleTarget(o, step.name);
          break;
        }
        case 'waitForRelease': {
          phase = 'waitingForRelease';
          progress();
          waitingSince ??= performance.now();
          if (performance.now() - waitingSince >= (o.catchUpMs ?? 5_000)) {
            // The writer kept on: one more round keeps the final delta to what it wrote since.
            rounds = [];
            waitingSince = null;
            break;
          }
          await sleep(o.releasePollMs ?? 100, o.signal ? { signal: o.signal } : {});
          break;
        }
        case 'targetHoldsCopy':
          throw new TargetHoldsCopyError(
            `the target holds a live copy of dataset ${datasetId} already (promoted by an earlier move, or made there): ` +
              "not sending over it or replacing it; this node's copy stays as it is until the target's copy shows in the cluster's state",
          );
        case 'promote':
          // The release looked at again, fresh, before the first promote: one look that missed a
          // container's mount (U2 finding 1) must not hand the target a copy a writer here still
          // changes. Still in use: this snapshot is not final, the move copies on (phase 1).
          // Then (review RV 2), the source unchanged since the final snapshot, asked last (nothing between
          // it and the promote): a writer the scan missed that wrote after the snapshot and ended
          // before the look leaves its writes in the source's copy only. Asked afresh by every run and
          // after every failure (nothing of it is kept): a restarted agent checks again.
          if (!promoteAsked) {
            const stillReleased = await (recheck ?? released());
            const verdict = finalVerdict({
              released: stillReleased,
              changedSinceFinal: stillReleased ? await changedSinceFinal(o, step.name) : undefined,
            });
            streakAfter(verdict);
            if (verdict.kind === 'copyOn') {
              logger?.warn(
                verdict.why === 'inUse'
                  ? 'in use again before the promote: the final snapshot is not final, copying on'
                  : 'written since the final snapshot (a writer the look at the release did not see): not final, copying on',
                { datasetId, snapshot: step.name },
              );
              finalSnapshot = null;
              // Changed while released: the volume stayed unavailable (RV4 5: counted from the first release).
              if (verdict.why === 'inUse') releasedAt = null;
              recheck = null;
              phase = 'copying';
              progress();
              break;
            }
            if (verdict.unchecked)
              logger?.warn(
                'this engine cannot tell whether the source changed since the final snapshot: promoting on the release alone',
                {
                  datasetId,
                  snapshot: step.name,
                },
              );
          }
          phase = 'promoting';
          progress();
          if (!promoteAsked) {
            promoteAsked = true;
            await o.beforePromote?.();
          }
          promoteRefused = false;
          try {
            await target.promote(datasetId, step.name, o.size, o.targetMounts ?? true);
          } catch (e) {
            // An answer (an error line) comes once the target is done with the request; anything else may leave it running.
            if (e instanceof LocalStorageError && !(e instanceof ConnectionLostError)) promoteRefused = true;
            else promoteUnanswered = true;
            throw e;
          }
          targetPromoted = true;
          await o.afterPromote?.();
          // Mounted there: the data is available again (the clean-up that follows is not in the window).
          unavailableMs = releasedAt === null ? 0 : performance.now() - releasedAt;
          break;
        case 'done': {
          phase = 'done';
          progress();
          await cleanUp(o, step.name);
          return { finalSnapshot: step.name, rounds: allRounds, bytesSent, unavailableMs };
        }
      }
      failures = 0;
      countedFailures = 0;
      unreachableSince = null;
    } catch (e) {
      known = null;
      recheck = null;
      // Stopped (the dataset deleted) or the agent stopping: what failed is the stop's own doing (the
      // wait or the send it aborted), not a step to retry or warn of; the move ends here.
      if (stopped()) throw new LocalStorageError('TRANSFER_FAILED', 'the move was stopped');
      if (e instanceof MoveTakenBackError || (o.cancel?.aborted === true && !promoteAsked)) throw e;
      // The move taken back while its promote's refusal is retried: looked at again at once (above), not after a back-off.
      if (o.cancel?.aborted === true && promoteRefused && !promoteUnanswered) continue;
      failures += 1;
      // A refusing target may only not have seen the new configuration yet: retried like the rest.
      const permanent =
        isLocalStorageError(e, 'UNKNOWN_DATASET') ||
        e instanceof TargetHoldsCopyError ||
        e instanceof SourceChangedAfterPromoteError;
      // A target being restarted refuses connections for a while: resumed once it listens again.
      const lost = e instanceof ConnectionLostError;
      if (lost) unreachableSince ??= performance.now();
      else {
        unreachableSince = null;
        countedFailures += 1;
      }
      const unreachableTooLong =
        unreachableSince !== null && performance.now() - unreachableSince >= (o.maxUnreachableMs ?? 600_000);
      if (permanent || countedFailures >= (o.maxAttempts ?? 20) || unreachableTooLong) throw e;
      const delay = backoffDelay(failures - 1, {
        initialMs: o.backoffInitialMs ?? 200,
        maxMs: o.backoffMaxMs ?? 5_000,
        jitter: true,
      });
      o.onRetry?.(errorMessage(e), failures);
      logger?.warn('move step failed; resuming from the snapshots both nodes hold', {
        datasetId,
        attempt: failures,
        retryInMs: delay,
        error: errorMessage(e),
      });
      // A move taken back during the back-off of a refused promote is looked at again at once.
      const wake = promoteRefused && !promoteUnanswered && o.cancel !== undefined ? o.cancel : undefined;
      const waitSignal =
        wake !== undefined && o.signal !== undefined ? AbortSignal.any([o.signal, wake]) : (wake ?? o.signal);
      await sleep(delay, waitSignal ? { signal: waitSignal } : {}).catch((err: unknown) => {
        if (o.signal?.aborted === true || wake?.aborted !== true) throw err;
      });
    }
  }
}

/** The engine's answer (LocalEngine.changedSince); an engine without it cannot tell. */
async function changedSinceFinal(o: LocalMoveOptions, name: string): Promise<boolean | null> {
  return o.engine.changedSince === undefined ? null : o.engine.changedSince(o.datasetId, name);
}

async function lookAtBoth(
  o: LocalMoveOptions,
): Promise<{ source: SnapshotRef[]; target: SnapshotRef[]; targetLive: boolean }> {
  const [source, status] = await Promise.all([
    o.engine.listSnapshots(o.datasetId),
    o.target.status(o.datasetId, { lineage: false }),
  ]);
  return {
    source: source.map((s) => ({ name: s.name, identity: s.identity })),
    target: status.snapshots.map((s) => ({ name: s.name, identity: s.identity })),
    targetLive: status.live.exists,
  };
}

/** The move ends without a promote: its dataset's primary is the source again. */
class MoveTakenBackError extends LocalStorageError {
  constructor(message: string) {
    super('TRANSFER_FAILED', message);
  }
}

/**
 * The target holds a live copy this run did not make (see nextMoveStep): not retried, the agent
 * decides again from its next view (once the target's copy shows there: this copy is retired).
 */
export class TargetHoldsCopyError extends LocalStorageError {
  constructor(message: string) {
    super('PEER_REFUSED', message);
  }
}

/**
 * After a send before the release: the target writes out what it received (on btrfs the final
 * receive would otherwise do it first, inside the unavailable window). Not a step of the move: a
 * target that fails it or does not know it (an older node) only leaves the work to the final receive.
 */
async function settleTarget(o: LocalMoveOptions, name: string): Promise<void> {
  if (o.target.settle === undefined) return;
  const t0 = performance.now();
  let ok = true;
  try {
    await o.target.settle(o.datasetId);
  } catch (e) {
    ok = false;
    o.logger?.warn('the target did not write out what it received; the final receive will', {
      datasetId: o.datasetId,
      error: errorMessage(e),
    });
  }
  const ms = performance.now() - t0;
  o.logger?.debug('target settled', { datasetId: o.datasetId, name, ok, durationMs: Math.round(ms) });
  o.onSettled?.({ name, ok, ms });
}

async function sendOne(
  o: LocalMoveOptions,
  name: string,
  parent: string | null,
  source: readonly { name: string; identity: string }[],
  onBytes: (n: number) => void,
): Promise<number> {
  const identity = source.find((s) => s.name === name)?.identity;
  if (identity === undefined) throw new LocalStorageError('UNKNOWN_SNAPSHOT', `no snapshot ${name} here`);
  const send = o.engine.send(o.datasetId, name, parent);
  const stop = (): void => send.abort();
  o.stop?.addEventListener('abort', stop, { once: true });
  // A stop that came before the listener (during released() or a listing) never fires it again.
  if (o.stop?.aborted === true) send.abort();
  try {
    return await o.target.receive({ datasetId: o.datasetId, name, parent, identity }, send, onBytes);
  } catch (e) {
    send.abort();
    await send.done.catch(() => undefined);
    throw e;
  } finally {
    o.stop?.removeEventListener('abort', stop);
  }
}

/**
 * After the target mounted: both sides keep only the final snapshot (the next move's base); the source retires its copy.
 * The retire checks, right before its delete, that the copy is unchanged since the final snapshot the
 * target promoted (review RV 2 / RV4 finding 1): a writer no look saw, still writing after the promote,
 * holds writes the target lacks: SourceChangedAfterPromoteError, the copy stays live, and the agent then
 * finds two live copies, this one branched from the target's, and refuses (TWO_LIVE_COPIES) until the
 * user keeps one.
 */
async function cleanUp(o: LocalMoveOptions, keep: string): Promise<void> {
  await o.target.prune(o.datasetId, keep);
  if (o.destroySource === false) return;
  const keepSource = o.keepSourceSnapshots ?? DEFAULT_KEEP_SOURCE_SNAPSHOTS;
  // Nothing kept: retired (refused while in use anywhere, or changed), then the snapshots go too (the
  // engine's destroy); a copy kept aside stays (until the dataset is deleted).
  if (keepSource < 1) {
    await o.engine.retire(o.datasetId, { unchangedSince: keep });
    return o.engine.destroyDataset(o.datasetId, { keepAsides: true });
  }
  for (const name of sourceSnapshotsToPrune(await o.engine.listSnapshots(o.datasetId), keep, keepSource))
    await o.engine.destroySnapshot(o.datasetId, name);
  await o.engine.retire(o.datasetId, { unchangedSince: keep });
}

export { SourceChangedAfterPromoteError };
