/** The dataset agent's options, the part of the control service's client it uses, and the crash test hook. */
import type { FenceReportStore } from './fenceReportFile';
import type { ClusterAnswer, ClusterSnapshot, NodeReport } from '@flocker/api';
import type { BlockDeviceApi } from '@flocker/storage-drivers';
import type winston from 'winston';
import type { Clock } from './clock';
import type { ContainerStopper } from './containers';
import type { BackupSettings } from './backups';
import type { HostOps } from './HostOps';
import { ACTION_KINDS, type ActionKind } from './LocalState';

/** The part of FlockerClient the agent uses. */
export interface ControlChannel {
  reportNodeState(report: NodeReport): Promise<unknown>;
  waitForCluster(since?: string, timeoutMs?: number): Promise<ClusterSnapshot>;
  /**
   * This node's view by deltas (issue 23; FlockerClient.waitForClusterDelta): when present the
   * agent follows its view with it, and whole snapshots only from a control service that refuses it.
   */
  waitForClusterDelta?(since: string | undefined, timeoutMs: number, node: string): Promise<ClusterAnswer>;
  /**
   * This node's view as a stream (issue 23; FlockerClient.watchCluster): the whole view or what
   * changed since `since`, then a delta per change. When present (with waitForClusterDelta) the
   * agent follows its view with it; long-poll deltas only from a control service that refuses it.
   */
  watchCluster?(
    node: string,
    since: string | undefined,
    options: { signal?: AbortSignal },
  ): AsyncIterable<ClusterAnswer>;
}

export interface CrashAfter {
  readonly kind: ActionKind;
  readonly count: number;
}

export interface DatasetAgentOptions {
  readonly nodeUuid: string;
  readonly era: string;
  readonly host: string;
  readonly instanceId: string;
  readonly driver: BlockDeviceApi;
  /**
   * The driver extends only a volume it may detach (Cinder extend_attached: reattach): a mounted volume is grown with
   * the agent's mount taken off around it, only while no lease is on it; with one, the grow waits (said in the log).
   */
  readonly resizeUnmounted?: boolean;
  readonly hostOps: HostOps;
  readonly control: ControlChannel;
  readonly mountRoot: string;
  readonly defaultSize: number;
  readonly resyncIntervalMs: number;
  readonly concurrency: number;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  readonly logger: winston.Logger;
  /** Test hook: die (SIGKILL) right after the count-th successful action of this kind. */
  readonly crashAfter?: CrashAfter;
  readonly crash?: () => void;
  /** How long one long-poll waits. */
  readonly pollWaitMs?: number;
  /**
   * Subscribes to "the shared pool changed" hints (the loopback driver's
   * watchPool); returns an unsubscribe function. Lets a node waiting for
   * another node to let go of a volume look again at once, not only after
   * the control service relays that node's report.
   */
  readonly poolChanges?: (onChange: () => void) => () => void;
  /**
   * While a dataset is still stepping towards its goal, how long the report of
   * its intermediate states may wait (default 250 ms). A report goes out at once
   * when a dataset's work ends (converged, failed, or waiting); in between, each
   * step's report would only make the control service, its watchers and this
   * agent (the echoed snapshot) work on the critical path of the next step.
   */
  readonly progressReportMs?: number;
  /** Every timer and timestamp of the agent (default: the system clock). */
  readonly clock?: Clock;
  /**
   * Self-fence bound from agent.yml (ms); the bound used is the shorter of this and
   * half the control service's node timeout (see fencing.ts).
   */
  readonly selfFenceMs?: number;
  /** Keeps the fence report over a restart (fenceReportFile in the state directory); absent: in memory only. */
  readonly fenceReports?: FenceReportStore;
  /** Stops this host's containers that use Flocker volumes when the node fences itself. */
  readonly containers?: ContainerStopper;
  /** Releases what fences left behind on this host (the loopback driver's releaseFenced). */
  readonly releaseFenced?: () => Promise<unknown>;
  /** The node timeout (ms) last learned by an earlier run: the bound holds from start even when cut off then. */
  readonly lastNodeTimeoutMs?: number;
  /** Told when the control service's node timeout is learned or changes (seconds), to keep it for the next start. */
  readonly onNodeTimeout?: (seconds: number) => void;
  /** The largest volume the backend can create (driver.maximumVolumeSize), reported as max_volume_size. */
  readonly maxVolumeSize?: number;
  /** The storage zone this node is in (driver.storageZone), reported as zone. */
  readonly zone?: string;
  /** This agent's release (its package.json version; the Debian packages stamp theirs), reported as version. */
  readonly version?: string;
  /** Bytes used at a mount point (tests); default statfs of it. Measured at most every few seconds per dataset. */
  readonly usedBytes?: (path: string) => number | undefined;
  /** The backend's free bytes (driver.availableBytes), asked at every full look and reported as available_bytes. */
  readonly availableBytes?: () => Promise<number | undefined>;
  /**
   * Spare volumes kept per size class (issue 23; agent.yml dataset.spares, loopback only): a new
   * dataset claims one instead of waiting for create + format. 0 or absent: none.
   */
  readonly spares?: number;
  /** Size classes of spares always kept besides the default size (agent.yml dataset.spare_sizes, bytes). */
  readonly spareSizes?: readonly number[];
  /** Backups and restores (issue 20): the S3 settings; absent, this agent runs neither (backup_store not reported). */
  readonly backups?: BackupSettings;
}

/** Parses FLOCKER_AGENT_CRASH_AFTER=<kind>:<n>. */
export function parseCrashAfter(value: string | undefined): CrashAfter | undefined {
  if (value === undefined || value === '') return undefined;
  const m = /^([a-zA-Z]+):(\d+)$/.exec(value);
  const kinds: readonly string[] = ACTION_KINDS;
  if (!m || !kinds.includes(m[1]!) || Number(m[2]) < 1) {
    throw new Error(`FLOCKER_AGENT_CRASH_AFTER must be <action kind>:<n> (n >= 1), got ${JSON.stringify(value)}`);
  }
  return { kind: m[1] as ActionKind, count: Number(m[2]) };
}

/**
 * How the agent follows its node's view (issue 23): 'watch' (the default: the streaming watch, with
 * long-poll deltas and whole snapshots as fallbacks against older control services) or 'long-poll'
 * (no watch: for a proxy on the way that holds a streamed answer back, and to compare the two).
 */
export type FollowChoice = 'watch' | 'long-poll';

/** Parses FLOCKER_AGENT_FOLLOW=watch|long-poll (unset or empty: watch). */
export function parseFollow(value: string | undefined): FollowChoice {
  if (value === undefined || value === '' || value === 'watch') return 'watch';
  if (value === 'long-poll') return 'long-poll';
  throw new Error(`FLOCKER_AGENT_FOLLOW must be watch or long-poll, got ${JSON.stringify(value)}`);
}
