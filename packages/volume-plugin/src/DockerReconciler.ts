/**
 * Reconciles the plugin's mount IDs (and so its leases) with the containers this host's
 * dockerd really runs. Docker does not always send Unmount: dockerd killed while a
 * container used a volume (the restarted dockerd kills the container and forgets its
 * mounts), or the plugin down while a container stopped. Such an ID would hold the
 * lease forever; here a volume no container uses any more is let go as its last
 * Unmount would have.
 *
 * Pure decisions first (which containers use a volume, what to do with its IDs), then
 * the scheduler: at start (dockerd may come up later), each time the connection to
 * dockerd comes back (a dockerd restart), and periodically.
 */
import { errorMessage } from '@flocker/runtime';
import type { Logger } from 'winston';
import {
  DockerUnreachableError,
  type DockerContainer,
  type DockerMount,
  type DockerView,
  type DockerVolume,
} from './DockerView';

/** A container in one of these states uses its volumes. */
export const IN_USE_STATES: ReadonlySet<string> = new Set(['running', 'paused', 'restarting']);
/**
 * Docker calls Mount before the container starts (state "created"), and a Mount may
 * be in flight while the list is taken: mount IDs this young, and "created"
 * containers this young, always count as in use.
 */
export const DEFAULT_MOUNT_SAFETY_WINDOW_MS = 60_000;
export const DEFAULT_RECONCILE_INTERVAL_MS = 30_000;
/** The plugin's own socket name, less ".sock": the driver name Docker records for its volumes unless told otherwise (--driver-name). */
export function driverNameOf(socketPath: string): string {
  const base = socketPath.split('/').pop() ?? socketPath;
  return base.endsWith('.sock') ? base.slice(0, -'.sock'.length) : base;
}

export interface VolumeRef {
  name: string;
  /** Where the volume is mounted on this host, if known: a mount with this source uses it too. */
  mountpoint?: string | undefined;
}

/**
 * The driver names Docker uses for this plugin's volumes: the configured one (--driver-name,
 * else the socket's name), and every name Docker's own volume list (GET /volumes) shows one
 * of our registry's volumes under — Docker may know the plugin by another name (a spec file
 * pointing at the socket, a managed plugin "flocker:latest"). Docker's built-in "local"
 * driver is never this plugin (a local volume that shares a name with ours is not ours).
 */
export function ourDriverNames(
  configured: string,
  ourVolumes: readonly string[],
  dockerVolumes: readonly DockerVolume[],
): Set<string> {
  const names = new Set([configured]);
  const ours = new Set(ourVolumes);
  for (const v of dockerVolumes) if (ours.has(v.name) && v.driver !== '' && v.driver !== 'local') names.add(v.driver);
  return names;
}

/** Whether a container mount is this volume: one of our driver names and its name, or the volume's mountpoint as source. */
export function mountsVolume(m: DockerMount, v: VolumeRef, drivers: ReadonlySet<string>): boolean {
  if (m.name === v.name && m.driver !== undefined && drivers.has(m.driver)) return true;
  return v.mountpoint !== undefined && m.source !== '' && m.source === v.mountpoint;
}

/** The containers that use the volume now, or are about to (a "created" one younger than the window). */
export function containersUsing(
  v: VolumeRef,
  containers: readonly DockerContainer[],
  drivers: ReadonlySet<string>,
  now: number,
  windowMs: number,
): DockerContainer[] {
  return containers.filter(
    (c) =>
      (IN_USE_STATES.has(c.state) || (c.state === 'created' && now - c.createdMs < windowMs)) &&
      c.mounts.some((m) => mountsVolume(m, v, drivers)),
  );
}

/** What one reconcile pass sees of dockerd: its containers, and the driver names it uses for our volumes. */
export interface DockerSight {
  containers: readonly DockerContainer[];
  drivers: ReadonlySet<string>;
  /**
   * We hold mount IDs, yet no container Docker lists (in any state) shows a mount of any of
   * our volumes as we recognise them: our driver names may not be Docker's. Then a volume
   * is released only if no container at all shows a mount of its name (under any driver).
   */
  blind: boolean;
}

/** The sight of one pass, for the volumes we hold mount IDs of (`held`). */
export function sightOf(
  containers: readonly DockerContainer[],
  dockerVolumes: readonly DockerVolume[],
  configured: string,
  held: readonly VolumeRef[],
): DockerSight {
  const drivers = ourDriverNames(
    configured,
    held.map((v) => v.name),
    dockerVolumes,
  );
  const seen = containers.some((c) => c.mounts.some((m) => held.some((v) => mountsVolume(m, v, drivers))));
  return { containers, drivers, blind: held.length > 0 && !seen };
}

/**
 * Whether a volume's inherited mount IDs (recorded by an earlier plugin process: Docker had their Mounts' answers
 * before this process started) no longer need the safety window. The window covers a container between its
 * Mount's answer and "running" (Docker calls Mount inside its start; a start stays "created" or "exited" until the
 * task runs, and may wait there on a Mount of another volume Docker retries while the plugin is down). Such a
 * container has not finished since that Mount. So when every listed container that mounts the volume and is not in
 * use finished after the newest inherited Mount (`finishedMs`: Docker's State.FinishedAt; undefined when unknown,
 * 0 when it never ran, as a "created" one), none can be mid-start for them: the list alone decides. Young IDs this
 * process recorded keep the window as before.
 */
export function inheritedSettled(
  inheritedAt: readonly number[],
  notInUse: readonly { finishedMs: number | undefined }[],
): boolean {
  if (inheritedAt.length === 0) return false;
  const newest = Math.max(...inheritedAt);
  return notInUse.every((c) => c.finishedMs !== undefined && c.finishedMs > 0 && c.finishedMs >= newest);
}

export type VolumeDecision =
  | { action: 'keep'; reason: 'in use'; containers: string[] }
  | { action: 'keep'; reason: 'young mount'; youngIds: string[] }
  | { action: 'keep'; reason: 'cannot tell'; containers: string[] }
  | { action: 'release'; staleIds: string[] };

/**
 * What to do with a volume's mount IDs. IDs are never matched to containers (Docker's
 * mount ID is not the container's): while any container uses the volume everything is
 * kept; extra IDs then only delay the release until a reconcile after the last one.
 * `settled`: IDs that no longer count as young whatever their age (see inheritedSettled).
 */
export function decideVolume(
  mountedAt: ReadonlyMap<string, number>,
  users: readonly DockerContainer[],
  now: number,
  windowMs: number,
  settled: ReadonlySet<string> = new Set(),
): VolumeDecision {
  if (users.length > 0) return { action: 'keep', reason: 'in use', containers: users.map((c) => c.id) };
  const youngIds = [...mountedAt].filter(([id, at]) => now - at < windowMs && !settled.has(id)).map(([id]) => id);
  if (youngIds.length > 0) return { action: 'keep', reason: 'young mount', youngIds };
  return { action: 'release', staleIds: [...mountedAt.keys()] };
}

/**
 * decideVolume against one pass's sight. Blind (see DockerSight): a volume whose name some
 * listed container mounts, under whatever driver, is kept ("cannot tell" whether it is ours);
 * one no container mounts by name is decided as usual.
 */
export function decideInSight(
  mountedAt: ReadonlyMap<string, number>,
  v: VolumeRef,
  sight: DockerSight,
  now: number,
  windowMs: number,
  settled: ReadonlySet<string> = new Set(),
): VolumeDecision {
  const users = containersUsing(v, sight.containers, sight.drivers, now, windowMs);
  if (users.length === 0 && sight.blind) {
    const byName = sight.containers.filter((c) => c.mounts.some((m) => m.name === v.name));
    if (byName.length > 0) return { action: 'keep', reason: 'cannot tell', containers: byName.map((c) => c.id) };
  }
  return decideVolume(mountedAt, users, now, windowMs, settled);
}

/** The listed containers that mount the volume (as ours, or by its name under any driver) and are not in use. */
export function stoppedMounting(v: VolumeRef, sight: DockerSight): DockerContainer[] {
  return sight.containers.filter(
    (c) => !IN_USE_STATES.has(c.state) && c.mounts.some((m) => m.name === v.name || mountsVolume(m, v, sight.drivers)),
  );
}

export interface VolumeOutcome {
  volume: string;
  datasetId: string;
  /**
   * released: IDs dropped and lease let go; kept: in use or too young; skipped: a release
   * already pending (copy-up); dropped: the dataset was deleted (its entry forgotten,
   * whatever uses the name now is a new volume).
   */
  result: 'released' | 'kept' | 'skipped' | 'failed' | 'dropped';
  detail?: string;
}

/** When a container last finished (Docker's State.FinishedAt, ms; 0 if it never ran), undefined when it cannot be had. */
export type FinishedAt = (containerId: string) => Promise<number | undefined>;

export interface ReconcileTarget {
  /**
   * `driver`: the configured driver name; `volumes`: Docker's volume list (which driver names
   * it knows our volumes under), none when it could not be had.
   */
  reconcileWithDocker(
    containers: readonly DockerContainer[],
    driver: string,
    volumes?: readonly DockerVolume[],
    finishedAt?: FinishedAt,
  ): Promise<VolumeOutcome[]>;
}

export interface Timers {
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

const realTimers: Timers = {
  setInterval: (fn, ms) => {
    const t = setInterval(fn, ms);
    t.unref();
    return t;
  },
  clearInterval: (h) => clearInterval(h as NodeJS.Timeout),
};

export interface DockerReconcilerOptions {
  docker: DockerView;
  target: ReconcileTarget;
  /** The driver name Docker uses for this plugin's volumes (--driver-name, else the socket's name); Docker's volume list may add others. */
  driver: string;
  logger: Logger;
  /** Periodic reconcile; 0 = only at (re)connection. */
  intervalMs: number;
  timers?: Timers;
}

export class DockerReconciler {
  private running: Promise<boolean> | undefined;
  private queued: Promise<boolean> | undefined;
  private follower: { close(): void } | undefined;
  private interval: unknown;
  /** dockerd answered the last attempt (warn once per outage, not every period). */
  private reachable: boolean | undefined;
  private closed = false;

  constructor(private readonly opts: DockerReconcilerOptions) {}

  /** Follow dockerd and reconcile at each (re)connection and periodically. Never blocks. */
  start(): void {
    this.follower = this.opts.docker.follow({
      onConnect: () => void this.run('dockerd connected'),
      onDisconnect: (reason) =>
        this.opts.logger.info('lost the connection to dockerd; reconciling when it is back', { reason }),
    });
    const timers = this.opts.timers ?? realTimers;
    if (this.opts.intervalMs > 0)
      this.interval = timers.setInterval(() => void this.run('periodic'), this.opts.intervalMs);
  }

  /**
   * Reconcile now, after one in progress if any (calls meanwhile share one run).
   * Resolves false when dockerd could not be listed: then nothing was changed.
   */
  run(reason: string): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    if (this.running === undefined) {
      const run = this.once(reason).finally(() => {
        if (this.running === run) this.running = undefined;
      });
      this.running = run;
      return run;
    }
    this.queued ??= this.running
      .catch(() => false)
      .then(() => {
        this.queued = undefined;
        return this.run(reason);
      });
    return this.queued;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.follower?.close();
    if (this.interval !== undefined) (this.opts.timers ?? realTimers).clearInterval(this.interval);
    await this.running?.catch(() => undefined);
    await this.queued?.catch(() => undefined);
  }

  private async once(reason: string): Promise<boolean> {
    let containers: DockerContainer[];
    try {
      containers = await this.opts.docker.containers();
    } catch (err) {
      const message = errorMessage(err);
      // Cannot see is not "not used": keep everything.
      if (this.reachable !== false) {
        this.opts.logger.warn('cannot list the containers of dockerd; keeping every mount until it answers', {
          reason,
          error: message,
          code: err instanceof DockerUnreachableError ? err.code : 'DOCKER_ERROR',
        });
      } else this.opts.logger.debug('dockerd still unreachable', { reason, error: message });
      this.reachable = false;
      return false;
    }
    this.reachable = true;
    // Which driver names Docker knows our volumes under. Without it only the configured name
    // is recognised; the "cannot tell" rule of the target keeps a volume some container mounts.
    let volumes: DockerVolume[] = [];
    try {
      volumes = await this.opts.docker.volumes();
    } catch (err) {
      this.opts.logger.warn(
        'cannot list the volumes of dockerd; recognising only the configured driver name this pass',
        {
          reason,
          driver: this.opts.driver,
          error: errorMessage(err),
          code: err instanceof DockerUnreachableError ? err.code : 'DOCKER_ERROR',
        },
      );
    }
    // Bound once: the view's method reads its own fields (`this`), and the closure needs no assertion.
    const finished = this.opts.docker.finishedAt?.bind(this.opts.docker);
    const finishedAt: FinishedAt | undefined =
      finished &&
      (async (id) => {
        try {
          return await finished(id);
        } catch (err) {
          this.opts.logger.debug(
            'cannot inspect a container (gone, or dockerd did not answer); its volumes keep the safety window',
            {
              container: id,
              error: errorMessage(err),
            },
          );
          return undefined;
        }
      });
    const outcomes = await this.opts.target.reconcileWithDocker(containers, this.opts.driver, volumes, finishedAt);
    const released = outcomes.filter((o) => o.result === 'released').map((o) => o.volume);
    const dropped = outcomes.filter((o) => o.result === 'dropped').map((o) => o.datasetId);
    this.opts.logger.debug('reconciled with dockerd', {
      reason,
      containers: containers.length,
      volumes: outcomes.length,
      released,
      dropped,
    });
    return true;
  }
}
