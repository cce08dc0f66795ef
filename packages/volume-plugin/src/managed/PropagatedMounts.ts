/**
 * The managed (v2) plugin's side of a mount. Docker runs a managed plugin in its own
 * mount namespace and resolves the Mountpoint it answers inside the plugin's
 * `propagatedMount` (a directory shared back to the host), so the agent's host path
 * is no answer. The host's mount root is seen in the plugin (a config.json mount with
 * rslave propagation, `seenAt`); on Mount the plugin bind-mounts the dataset from
 * there into the propagated mount and answers that path. The bind goes when the last
 * mount ID of the dataset goes, before the agent may unmount the dataset.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from 'winston';
import type { MountRegistry } from '../MountRegistry';
import { mountPointsOf } from '../MountTable';
import {
  VolumePluginError,
  type CapabilitiesResponse,
  type CreateRequest,
  type GetResponse,
  type ListResponse,
  type MountRequest,
  type MountResponse,
  type NameRequest,
  type PathResponse,
  type VolumeDriverBackend,
} from '../protocol';

export interface PropagatedMountPaths {
  /** The agent's mount root on the host (agent.yml node.mount_root): the paths the cluster state reports. */
  hostMountRoot: string;
  /** Where the host's mount root is seen inside the plugin. */
  seenAt: string;
  /** config.json `propagatedMount`: where Docker looks for what the plugin answers. */
  propagatedMount: string;
}

/** Where a reported host mount is seen in the plugin and bound for Docker; undefined if outside the mount root. */
export function propagatedPaths(
  reported: string,
  p: PropagatedMountPaths,
): { source: string; target: string; datasetId: string } | undefined {
  const rel = path.posix.relative(path.posix.resolve(p.hostMountRoot), path.posix.resolve(reported));
  if (rel === '' || rel.startsWith('..') || path.posix.isAbsolute(rel) || rel.includes('/')) return undefined;
  return { source: path.posix.join(p.seenAt, rel), target: path.posix.join(p.propagatedMount, rel), datasetId: rel };
}

/** The answer Docker gets for a reported host path (Get, List, Path). */
export function mappedMountpoint(reported: string | undefined, p: PropagatedMountPaths): string | undefined {
  return reported === undefined ? undefined : propagatedPaths(reported, p)?.target;
}

/** Bind targets (direct children of the propagated mount) whose dataset has no mount ID here any more. */
export function staleTargets(
  mounted: readonly string[],
  propagatedMount: string,
  count: (datasetId: string) => number,
): string[] {
  const root = path.posix.resolve(propagatedMount);
  return [...new Set(mounted.filter((m) => path.posix.dirname(m) === root && count(path.posix.basename(m)) === 0))];
}

/** The mount operations the plugin makes (real: util-linux in the rootfs; fakes in unit tests). */
export interface Mounter {
  /** Mount points now, in this mount namespace. */
  mountPoints(): string[];
  bind(source: string, target: string): Promise<void>;
  unmount(target: string): Promise<void>;
}

const run = promisify(execFile);

export const systemMounter: Mounter = {
  mountPoints: () => mountPointsOf(fs.readFileSync('/proc/self/mountinfo', 'utf8')),
  bind: async (source, target) => {
    fs.mkdirSync(target, { recursive: true });
    await run('mount', ['--bind', source, target]);
  },
  unmount: async (target) => {
    await run('umount', [target]);
    fs.rmSync(target, { recursive: true, force: true });
  },
};

/** A VolumeDriverBackend that answers paths inside the propagated mount and keeps the binds there. */
export class PropagatedMounts implements VolumeDriverBackend {
  /** Binds and sweeps one at a time (quick); the inner backend's own per-volume queue orders the rest. */
  private lock: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly inner: VolumeDriverBackend,
    private readonly registry: Pick<MountRegistry, 'count'>,
    private readonly paths: PropagatedMountPaths,
    private readonly logger: Logger,
    private readonly mounter: Mounter = systemMounter,
  ) {}

  /** Binds of datasets no container here uses any more (a crash, a reconcile that dropped IDs) go first. */
  async start(): Promise<void> {
    await this.locked(() => this.sweep());
  }

  create(req: CreateRequest): Promise<void> {
    return this.inner.create(req);
  }

  async remove(req: NameRequest): Promise<void> {
    await this.inner.remove(req);
    await this.locked(() => this.sweep());
  }

  async mount(req: MountRequest): Promise<MountResponse> {
    const r = await this.inner.mount(req);
    const p = propagatedPaths(r.Mountpoint, this.paths);
    // The mount ID is counted before the bind: a sweep now leaves it, a sweep before took an old bind.
    return this.locked(async () => {
      try {
        if (p === undefined)
          throw new VolumePluginError(
            'MOUNT_OUTSIDE_ROOT',
            `Volume ${req.Name} is mounted at ${r.Mountpoint}, outside the mount root ${this.paths.hostMountRoot} this plugin sees.`,
          );
        if (!this.mounter.mountPoints().includes(p.target)) {
          await this.mounter.bind(p.source, p.target);
          this.logger.info('bound volume into the propagated mount', { volume: req.Name, target: p.target });
        }
        return { Mountpoint: p.target };
      } catch (err) {
        // Docker calls no Unmount after a failed Mount: give the mount ID back.
        await this.inner.unmount(req).catch(() => undefined);
        throw err;
      }
    });
  }

  async unmount(req: MountRequest): Promise<void> {
    await this.inner.unmount(req);
    await this.locked(() => this.sweep());
  }

  async path(req: NameRequest): Promise<PathResponse> {
    const m = mappedMountpoint((await this.inner.path(req)).Mountpoint, this.paths);
    return m === undefined ? {} : { Mountpoint: m };
  }

  async get(req: NameRequest): Promise<GetResponse> {
    const r = await this.inner.get(req);
    return { Volume: this.mapVolume(r.Volume) };
  }

  async list(): Promise<ListResponse> {
    const r = await this.inner.list();
    return { Volumes: r.Volumes.map((v) => this.mapVolume(v)) };
  }

  capabilities(): Promise<CapabilitiesResponse> {
    return this.inner.capabilities();
  }

  private mapVolume<V extends { Mountpoint?: string }>(v: V): V {
    const { Mountpoint, ...rest } = v;
    const m = mappedMountpoint(Mountpoint, this.paths);
    return (m === undefined ? rest : { ...rest, Mountpoint: m }) as V;
  }

  private async sweep(): Promise<void> {
    for (const target of staleTargets(this.mounter.mountPoints(), this.paths.propagatedMount, (id) =>
      this.registry.count(id),
    )) {
      // A bind that will not go is logged and tried again on the next Unmount; the Unmount itself succeeded.
      await this.mounter.unmount(target).then(
        () => this.logger.info('unbound unused volume from the propagated mount', { target }),
        (err: unknown) =>
          this.logger.warn('could not unbind from the propagated mount', { target, error: String(err) }),
      );
    }
  }

  private locked<T>(f: () => Promise<T>): Promise<T> {
    const next = this.lock.then(f, f);
    this.lock = next.catch(() => undefined);
    return next;
  }
}
