/**
 * The work on one dataset (what each of the WorkQueue's workers runs): one step at
 * a time, each decided on a fresh look at that dataset, until it needs nothing,
 * fails (backoff), or may not act.
 */
import { METADATA_NAME_KEY, type ClusterSnapshot } from '@flocker/api';
import { datasetAgentMetrics, processRegistry } from '@flocker/metrics';
import {
  isStorageError,
  type BlockDeviceApi,
  type BlockDeviceSnapshot,
  type BlockDeviceVolume,
  type StorageErrorCode,
} from '@flocker/storage-drivers';
import type winston from 'winston';
import { calculateChanges, mountPathOf, type GrowingDecisionContext } from './calculateChanges';
import type { Clock } from './clock';
import type { CrashAfter } from './DatasetAgentOptions';
import { desiredStateOf } from './desiredState';
import { discoverLocalState } from './discoverLocalState';
import { errorCode, errorMessage } from './errors';
import { executeAction, type ActionResult, type OfflineGrow } from './executeAction';
import type { FailureLog } from './FailureLog';
import type { FilesystemFound, HostOps } from './HostOps';
import type { Action, ActionKind, DesiredDataset, DesiredState, DiscoveredVolume, LocalState } from './LocalState';
import type { Observation, ObservationView } from './ObservationView';
import type { PoolKnowledge } from './PoolKnowledge';
import type { Reporter } from './Reporter';
import type { SelfFencing } from './SelfFencing';
import type { SparePool } from './SparePool';
import { mayClaimSpare } from './spareDecisions';
import { ACQUIRING_ACTIONS } from './fencing';
import { stateAfter } from './stateAfter';

export interface DatasetWorkerContext {
  readonly driver: BlockDeviceApi;
  readonly hostOps: HostOps;
  readonly instanceId: string;
  readonly logger: winston.Logger;
  readonly clock: Clock;
  readonly decision: GrowingDecisionContext;
  /** The offline grow of a file system whose online growth was refused (executeAction); absent: none. */
  readonly offlineGrow?: OfflineGrow;
  readonly crashAfter?: CrashAfter;
  readonly crash?: () => void;
  readonly view: ObservationView;
  readonly pool: PoolKnowledge;
  readonly failures: FailureLog;
  readonly fencing: Pick<SelfFencing, 'mayAct' | 'phase'>;
  readonly reporter: Pick<Reporter, 'request' | 'requestProgress'>;
  readonly snapshot: () => ClusterSnapshot | null;
  readonly stopping: () => boolean;
  /** Something was missed (a failed look or action, no permission to act): a full look once idle. */
  readonly missed: () => void;
  /** The backend's snapshots as a look just listed them (for the node report). */
  readonly snapshotsSeen?: (snapshots: readonly BlockDeviceSnapshot[]) => void;
  /** Writes a stored backup onto a device (issue 20); absent without S3 settings. */
  readonly restoreBackup?: (action: Extract<Action, { kind: 'restore' }>) => Promise<void>;
  /** Spare volumes a create claims (issue 23); absent where the backend keeps none or they are off. */
  readonly sparePool?: Pick<SparePool, 'claim'>;
}

/**
 * The dataset's volumes as the step just done leaves them, where that step's own answer tells
 * without listing the pool again (issue 23: the listing of every record is on a move's critical
 * path twice, after the unmount on the old primary and after the attach on the new one):
 * - unmount changes no record: the volumes are as the look before it listed them;
 * - attach returned: the volume is attached here (the backend's record, written under its own
 *   exclusion; also when it found it so already).
 * Invariant: only the listing is left out; the look after the step still probes this host's
 * devices, mounts and file systems (the check after an unmount that the device is mounted
 * nowhere here stays), and the listing comes back at the step after. Another node can change these
 * records meanwhile only by forcing a detach, which the next step (detach, mount) finds out
 * itself; a wrong guess costs a failed step, never data. Anything else: undefined (list the pool).
 */
export function poolAfter(local: LocalState, action: Action, instanceId: string): BlockDeviceVolume[] | undefined {
  if (action.kind !== 'unmount' && action.kind !== 'attach') return undefined;
  const mine = local.volumes.filter((v) => v.datasetId === action.datasetId);
  if (!mine.some((v) => v.blockdeviceId === action.blockdeviceId)) return undefined;
  return mine.map((v) =>
    poolVolume(
      action.kind === 'attach' && v.blockdeviceId === action.blockdeviceId ? { ...v, attachedTo: instanceId } : v,
    ),
  );
}

/** A volume as the pool lists it (no device details). */
function poolVolume(v: DiscoveredVolume): DiscoveredVolume & BlockDeviceVolume {
  return {
    blockdeviceId: v.blockdeviceId,
    datasetId: v.datasetId,
    size: v.size,
    attachedTo: v.attachedTo,
    ...(v.profile !== undefined ? { profile: v.profile } : {}),
  };
}

/**
 * What this node's report says of a dataset's volumes as far as anyone waits on it (a move's other end, the
 * plugin, `--wait`): which of them are attached here, and whether each is mounted at the dataset's own path (its
 * manifestation's status). A key: equal for two lists that report the same.
 */
export function holdingsHere(volumes: readonly DiscoveredVolume[], instanceId: string, mountPath: string): string {
  return JSON.stringify(
    volumes
      .filter((v) => v.attachedTo === instanceId)
      .map((v) => [v.blockdeviceId, (v.mountPoints ?? []).includes(mountPath)])
      .sort(),
  );
}

/**
 * How the end of a dataset's work is reported (issue 23): at once, unless the last step's outcome already went out
 * at once (the release after a detach, a mount: `reported`, holdingsHere as that report said) and the look after
 * it found the same (`looked`). What else that look found — typically the new holder's attach of the volume this
 * node just let go — is the other node's to report, and nobody waits on this node for it: it goes out as progress
 * (within progressReportMs), not as one more report, and one more push to every follower, in the middle of the
 * move. Anything else the look found of this node's own holdings is reported at once.
 */
export function endReport(reported: string | undefined, looked: string): 'now' | 'progress' {
  return reported !== undefined && reported === looked ? 'progress' : 'now';
}

/** The one next step for a dataset (none when it has reached its goal). */
/**
 * A first observation that is the agent's view (the dataset's volumes as last seen), not a look made for
 * this worker: only a move away's unmount is started on it (moveStart.unmountOnView). The step after it
 * lists the pool again (no poolAfter: the view's listing may be older than a look's).
 */
export interface ViewObservation extends Observation {
  readonly fromView: true;
  /**
   * The view with a release assumed (moveStart.assumeReleased, attachOnRelease): the first step is an attach the
   * backend refuses if the release was not made; refused (ALREADY_ATTACHED, or UNKNOWN_VOLUME for a volume gone
   * meanwhile), it is no failure: the worker looks and decides again.
   */
  readonly releaseAssumed?: true;
}

/** What a refused attach on an assumed release means: not released (yet), or gone; the look tells which. */
const NOT_YET: readonly StorageErrorCode[] = ['ALREADY_ATTACHED', 'UNKNOWN_VOLUME'];

function isViewObservation(o: Observation): o is ViewObservation {
  return 'fromView' in o && o.fromView === true;
}

export function nextAction(
  dataset: DesiredDataset,
  desired: DesiredState,
  local: LocalState,
  decision: GrowingDecisionContext,
): Action | undefined {
  return calculateChanges({ ...desired, datasets: [dataset] }, local, decision)[0];
}

export class DatasetWorker {
  /**
   * Volumes this process created and has not yet tried to format or touched
   * otherwise (attach aside): their look skips the filesystem probe (see
   * discoverLocalState's knownBlank). In memory only: after a restart every
   * volume is probed again.
   */
  private readonly blank = new Set<string>();
  private readonly isBlank = (blockdeviceId: string): boolean => this.blank.has(blockdeviceId);
  /**
   * Volumes this process claimed from a spare (issue 23) and has not touched otherwise (attach aside): formatted, with
   * the file system the claim's check read (when the backend said), which their mount then need not read again.
   */
  private readonly claimed = new Map<string, FilesystemFound | undefined>();
  /**
   * Volumes this process has seen holding a file system (a look found one, or a format or mount of the volume
   * succeeded): the attach of one on a move here is followed by its mount with no look between
   * (stateAfter), and a worker's look does not probe it (the look between a move's unmount and detach; issue 23:
   * both were on a move's critical path). Never forgotten but at a destroy: the agent
   * never formats a volume that holds a file system, so once seen, the next mount needs no probe to know it; a
   * volume wiped by hand since fails its mount, and the look after that failure finds it blank. In memory only.
   */
  private readonly formatted = new Set<string>();
  private readonly isFormatted = (blockdeviceId: string): boolean =>
    this.claimed.has(blockdeviceId) || this.formatted.has(blockdeviceId);
  private readonly successes = new Map<ActionKind, number>();
  private readonly metrics = datasetAgentMetrics(processRegistry('dataset-agent'));

  constructor(private readonly c: DatasetWorkerContext) {}

  private now(): number {
    return this.c.clock.now();
  }

  /**
   * What a look (a worker's, or the agent's full look) found of file systems: see `formatted`. `whole`: the look
   * listed the whole pool (the full look), so a volume it did not list is gone (destroyed, maybe by another node)
   * and is forgotten: the set stays as big as the pool.
   */
  sawFilesystems(local: LocalState, whole = false): void {
    if (whole) {
      const listed = new Set(local.volumes.map((v) => v.blockdeviceId));
      for (const id of this.formatted) if (!listed.has(id)) this.formatted.delete(id);
    }
    for (const v of local.volumes) if (v.hasFilesystem === true) this.formatted.add(v.blockdeviceId);
  }

  /**
   * One dataset, one step at a time, each decided on a fresh look at that
   * dataset. The first look may be the turn's own (`fresh`), made just before;
   * after a setup step, stateAfter may stand in for the look.
   */
  async converge(datasetId: string, fresh?: Observation): Promise<void> {
    const { c } = this;
    let previous = '';
    let first = fresh;
    // The dataset's volumes as the step just done left them (poolAfter): the next look lists no pool.
    let known: BlockDeviceVolume[] | undefined;
    // What the report sent at once after the last step said of the dataset here (holdingsHere); undefined: none.
    let reported: string | undefined;
    const mountPath = mountPathOf(datasetId, c.decision);
    for (let snapshot = c.snapshot(); !c.stopping() && snapshot !== null; snapshot = c.snapshot()) {
      let desired = desiredStateOf(snapshot);
      let dataset = desired.datasets.find((d) => d.datasetId === datasetId);
      if (dataset === undefined) return;
      // The look is inline, not an async helper: the helper's extra await shifted when concurrent
      // workers list the pool, and fewer listings were shared (FreshRead): 565 instead of 543
      // for 100 new datasets on the fakes, each a read of every record on the loopback pool.
      let local: LocalState;
      // The step decided on the view, not on a look (see ViewObservation).
      const onView = first !== undefined && isViewObservation(first);
      const assumed = first !== undefined && isViewObservation(first) && first.releaseAssumed === true;
      if (first !== undefined) {
        local = first.local;
        if (onView) c.logger.debug('decided on the view', { datasetId });
      } else {
        const seq = c.view.nextSeq();
        const t0 = this.now();
        const volumes = known;
        known = undefined;
        try {
          local = c.pool.withUnreadable(
            await discoverLocalState({
              driver: c.driver,
              host: c.hostOps,
              instanceId: c.instanceId,
              onlyDataset: datasetId,
              listVolumes: volumes !== undefined ? async () => volumes : c.pool.listPool,
              knownBlank: this.isBlank,
              knownFormatted: this.isFormatted,
              // Only a dataset with configured snapshots needs the backend's list (one more call per look).
              withSnapshots: (desired.snapshots ?? []).some((s) => s.datasetId === datasetId),
              onSnapshotListFailed: (e) =>
                c.logger.warn('listing snapshots failed', { datasetId, code: errorCode(e), error: errorMessage(e) }),
            }),
          );
          if (local.snapshots !== undefined) c.snapshotsSeen?.(local.snapshots);
          this.sawFilesystems(local);
          c.logger.debug('observed dataset', {
            datasetId,
            durationMs: this.now() - t0,
            ...(volumes !== undefined ? { listed: false } : {}),
          });
        } catch (e) {
          c.logger.warn('observation failed', { datasetId, code: errorCode(e), error: errorMessage(e) });
          c.missed();
          return;
        }
        c.view.update(local, seq, datasetId);
        // A configuration that arrived during the look is decided on now, with the look just made (as a full look's
        // turn decides on what arrived meanwhile). Issue 23: in back-to-back moves, the move away of a dataset whose
        // move here this worker is confirming arrives during that last look; deciding on the older one ended the
        // worker, and the move away (not started beside a running worker) waited for the end report's round trip
        // and a full look. Reports stay at the version the worker started on (ActedVersion: the conservative side).
        const latest = c.snapshot();
        if (latest !== null && latest !== snapshot) {
          desired = desiredStateOf(latest);
          dataset = desired.datasets.find((d) => d.datasetId === datasetId);
          if (dataset === undefined) return;
        }
      }
      const action = nextAction(dataset, desired, local, c.decision);
      if (action === undefined) {
        c.failures.clear(datasetId);
        const looked = local.volumes.filter((v) => v.datasetId === datasetId);
        if (endReport(reported, holdingsHere(looked, c.instanceId, mountPath)) === 'progress')
          c.reporter.requestProgress();
        else c.reporter.request();
        return;
      }
      if (c.failures.retryAt(datasetId) > this.now()) {
        c.reporter.request();
        return; // the turn's timer comes back for it
      }
      // Never take or change a volume on a configuration not confirmed within the self-fence bound.
      if (ACQUIRING_ACTIONS.has(action.kind) && !c.fencing.mayAct()) {
        c.logger.warn('not acting on an unconfirmed configuration', {
          datasetId,
          kind: action.kind,
          phase: c.fencing.phase,
        });
        c.missed();
        c.reporter.request();
        return;
      }
      // More steps follow at once: their outcome is reported when they end (or after progressReportMs).
      c.reporter.requestProgress();
      // The same action again right after it succeeded: it has no effect we can see. Back off instead of spinning.
      const key = JSON.stringify(action);
      if (key === previous) {
        this.recordFailure(
          action,
          'NO_PROGRESS',
          `${action.kind} succeeded but the next observation still asks for it`,
          this.now(),
        );
        c.reporter.request();
        return;
      }
      previous = key;
      reported = undefined;
      const result = await this.run(action, dataset, assumed && action.kind === 'attach' ? NOT_YET : []);
      if (result === 'notYet') {
        c.logger.debug('the release assumed is not made: looked at', { datasetId });
        previous = '';
        first = undefined;
        continue;
      }
      if (result === undefined) {
        c.reporter.request();
        return;
      }
      if (action.kind === 'detach') this.reportReleased(local, action);
      if (result.reportedAtOnce === true || action.kind === 'detach')
        reported = holdingsHere(c.view.volumesOf(datasetId), c.instanceId, mountPath);
      first = this.observationAfter(local, action, result);
      if (first === undefined && !onView) known = poolAfter(local, action, c.instanceId);
    }
  }

  /**
   * A volume let go is what the node taking it over waits for, and on every backend without a
   * pool watch (all but loopback) that node learns of it from this node's report: recorded in the
   * view and reported at once after the detach, before the look that confirms it. Invariant: the
   * detach returned without error (the backend has the volume attached nowhere, or found it so);
   * the look after it still decides the next step, and the report after that says what it found.
   */
  private reportReleased(local: LocalState, action: Extract<Action, { kind: 'detach' }>): void {
    const volumes = local.volumes
      .filter((v) => v.datasetId === action.datasetId)
      .map((v) => (v.blockdeviceId === action.blockdeviceId ? { ...poolVolume(v), attachedTo: null } : v));
    this.c.view.update({ instanceId: local.instanceId, volumes }, this.c.view.nextSeq(), action.datasetId);
    this.c.reporter.request();
  }

  /**
   * stateAfter: the next step of a new volume's setup is decided on what the step just
   * done answered, without a look. Invariant (stateAfter.ts): only where that answer is
   * the whole truth about what changed (create; attach of a volume known blank; format),
   * and the next step guards itself, so a wrong guess costs a failed step, never data.
   */
  private observationAfter(local: LocalState, action: Action, result: ActionResult): Observation | undefined {
    const after = stateAfter(local, action, result, this.isBlank, this.isFormatted);
    if (after === undefined) return undefined;
    const seq = this.c.view.nextSeq();
    this.c.view.update(after, seq, action.datasetId);
    return { seq, local: after };
  }

  /**
   * Runs one action; undefined if it failed (recorded for backoff and reporting), 'notYet' if it failed with one of
   * `notYet` (not recorded: see ViewObservation.releaseAssumed). `reportedAtOnce`: a mount recorded in the view and
   * reported at once (reportMounted).
   */
  private async run(
    action: Action,
    dataset: DesiredDataset,
    notYet: readonly StorageErrorCode[],
  ): Promise<(ActionResult & { readonly reportedAtOnce?: true }) | 'notYet' | undefined> {
    const { c } = this;
    const started = this.now();
    c.logger.debug('action start', { datasetId: action.datasetId, kind: action.kind });
    // A claimed spare's first mount: the file system its claim checked (nothing touched it since, the attach aside).
    const knownFilesystem = action.kind === 'mount' ? this.claimed.get(action.blockdeviceId) : undefined;
    // Formatting (or anything but attaching) ends what we know of a volume's blankness.
    if ('blockdeviceId' in action && action.kind !== 'attach') {
      this.blank.delete(action.blockdeviceId);
      this.claimed.delete(action.blockdeviceId);
    }
    const spares = c.sparePool;
    let result: ActionResult;
    try {
      result = await executeAction(action, {
        driver: c.driver,
        host: c.hostOps,
        instanceId: c.instanceId,
        logger: c.logger,
        onCreated: (v) => this.blank.add(v.blockdeviceId),
        ...(spares !== undefined && mayClaimSpare(dataset)
          ? {
              claimSpare: (datasetId: string, size: number, options: { profile?: string; onlyVolume?: boolean }) =>
                spares.claim(datasetId, size, options),
              onClaimed: (v: { blockdeviceId: string }, filesystem?: FilesystemFound) =>
                this.claimed.set(v.blockdeviceId, filesystem),
            }
          : {}),
        ...(knownFilesystem !== undefined ? { knownFilesystem } : {}),
        knownVolumes: () => ({ reported: c.pool.reportedVolumes(), remembered: c.pool.rememberedDatasets() }),
        // Only a volume known blank or formatted skips the look after its attach (stateAfter).
        wantDevicePath: (id) => this.isBlank(id) || this.isFormatted(id),
        ...(c.restoreBackup !== undefined ? { restoreBackup: c.restoreBackup } : {}),
        ...(c.offlineGrow !== undefined ? { offlineGrow: c.offlineGrow } : {}),
      });
    } catch (e) {
      c.view.actionEnded();
      if (notYet.some((code) => isStorageError(e, code))) {
        this.metrics.step(action.kind, (this.now() - started) / 1000, errorCode(e));
        return 'notYet';
      }
      this.recordFailure(action, errorCode(e), errorMessage(e), started);
      this.metrics.step(action.kind, (this.now() - started) / 1000, errorCode(e));
      return undefined;
    }
    c.view.actionEnded();
    this.metrics.step(action.kind, (this.now() - started) / 1000);
    c.failures.clear(action.datasetId);
    if (action.kind === 'format' || action.kind === 'mount') this.formatted.add(action.blockdeviceId);
    else if (action.kind === 'destroy') this.formatted.delete(action.blockdeviceId);
    const reportedAtOnce =
      (action.kind === 'mount' || action.kind === 'restore') &&
      this.reportMounted(action.datasetId, action.blockdeviceId, action.mountPath, result.filesystem);
    const volume = this.volumeName(action.datasetId);
    c.logger.info('action done', {
      ...(volume !== undefined ? { volume } : {}),
      ...action,
      durationMs: this.now() - started,
    });
    this.maybeCrash(action.kind);
    return reportedAtOnce ? { ...result, reportedAtOnce } : result;
  }

  /**
   * A dataset mounted at its path is what waiters (the Docker plugin's Mount) wait for:
   * recorded in the view and reported at once, before the look that confirms it (which
   * normally ends the work). Invariant: the mount call returned without error, and the
   * look right after it still decides: a mount without effect shows there, and the
   * report that follows says so (which is why mount has no stateAfter).
   */
  private reportMounted(
    datasetId: string,
    blockdeviceId: string,
    mountPath: string,
    filesystem: 'ext4' | 'xfs' | undefined,
  ): boolean {
    if (!this.c.view.recordMount(datasetId, blockdeviceId, this.c.instanceId, mountPath, filesystem)) return false;
    this.c.reporter.request();
    return true;
  }

  private recordFailure(action: Action, code: string, message: string, started: number): void {
    this.c.missed();
    this.c.failures.record(action, code, message, started, this.volumeName(action.datasetId));
  }

  /** The dataset's name (metadata.name: the Docker volume or CSI PV name), for logs. */
  private volumeName(datasetId: string): string | undefined {
    return this.c.snapshot()?.datasets.find((d) => d.dataset_id === datasetId)?.metadata[METADATA_NAME_KEY];
  }

  private maybeCrash(kind: ActionKind): void {
    const n = (this.successes.get(kind) ?? 0) + 1;
    this.successes.set(kind, n);
    const crashAfter = this.c.crashAfter;
    if (crashAfter && crashAfter.kind === kind && crashAfter.count === n) {
      this.c.logger.warn('crashing on purpose (FLOCKER_AGENT_CRASH_AFTER)', { kind, count: n });
      (this.c.crash ?? (() => process.kill(process.pid, 'SIGKILL')))();
    }
  }
}
