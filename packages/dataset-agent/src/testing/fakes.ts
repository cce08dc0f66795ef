/**
 * In-memory driver, host and control service for tests of the agent (test support;
 * not exported by the package). FakeDriver keeps the BlockDeviceApi contract as
 * strictly as a real driver (fakes.test.ts runs the contract suite against it), so a
 * test cannot pass only because the fake forgives what a real backend refuses.
 */
import type { ClusterSnapshot, NodeReport, NodeState } from '@flocker/api';
import {
  roundUpToUnit,
  StorageError,
  type BlockDeviceApi,
  type BlockDeviceSnapshot,
  type SnapshotOptions,
  type BlockDeviceVolume,
  type CreateVolumeOptions,
  type DetachOptions,
} from '@flocker/storage-drivers';
import { systemClock, type Clock } from '../clock';
import type { ControlChannel } from '../DatasetAgent';
import type { FilesystemFound, HostMount, HostOps } from '../HostOps';

const MiB = 1024 * 1024;

/** A node's state as the control service reports it: alive, nothing on it, `over` on top. */
export const nodeState = (uuid: string, over: Partial<NodeState> = {}): NodeState => ({
  uuid,
  era: 'e',
  host: 'h',
  instance_id: `i-${uuid.slice(0, 1)}`,
  backend: 'fake',
  manifestations: [],
  errors: [],
  alive: true,
  last_seen: '',
  ...over,
});

/** A pool of volumes in memory, shared by every FakeDriver made on it. */
class FakePool {
  readonly volumes = new Map<string, BlockDeviceVolume>();
  readonly snapshots = new Map<string, BlockDeviceSnapshot>();
  readonly clonedFrom = new Map<string, string>();
  newSnapshotStatus: BlockDeviceSnapshot['status'] = 'ready';
  private next = 0;
  private nextSnapshot = 0;
  newId(): string {
    return `vol-${this.next++}`;
  }
  newSnapshotBackendId(): string {
    return `snap-${this.nextSnapshot++}`;
  }
}

/**
 * A BlockDeviceApi in memory: instance "i-me" unless told otherwise; `volumes` and
 * `snapshots` (by snapshot id) may be set directly by tests (e.g. a snapshot's status
 * to "creating"). onOtherInstance() gives a second instance on the same pool.
 */
export class FakeDriver implements BlockDeviceApi {
  readonly backend = 'fake';
  readonly volumes: Map<string, BlockDeviceVolume>;
  readonly snapshots: Map<string, BlockDeviceSnapshot>;
  /** The snapshot each volume made by createVolumeFromSnapshot was made from (by blockdevice id). */
  readonly clonedFrom: Map<string, string>;

  constructor(
    private readonly instanceId = 'i-me',
    private readonly pool = new FakePool(),
  ) {
    this.volumes = pool.volumes;
    this.snapshots = pool.snapshots;
    this.clonedFrom = pool.clonedFrom;
  }

  /** The status new snapshots start in (default "ready"; "creating" models EBS's pending snapshots). */
  set newSnapshotStatus(status: BlockDeviceSnapshot['status']) {
    this.pool.newSnapshotStatus = status;
  }

  onOtherInstance(instanceId: string): FakeDriver {
    return new FakeDriver(instanceId, this.pool);
  }
  allocationUnit(): number {
    return MiB;
  }
  async computeInstanceId(): Promise<string> {
    return this.instanceId;
  }
  async createVolume(datasetId: string, size: number, options: CreateVolumeOptions = {}): Promise<BlockDeviceVolume> {
    if (!(size > 0)) throw new StorageError('INVALID_SIZE', `volume size must be positive, not ${size}`);
    const v: BlockDeviceVolume = {
      blockdeviceId: this.pool.newId(),
      datasetId,
      size: roundUpToUnit(size, MiB),
      attachedTo: null,
      ...(options.profile === undefined ? {} : { profile: options.profile }),
    };
    this.volumes.set(v.blockdeviceId, v);
    return v;
  }
  async destroyVolume(id: string): Promise<void> {
    const v = this.known(id);
    if (v.attachedTo !== null)
      throw new StorageError('VOLUME_ATTACHED', `volume ${id} is attached to ${v.attachedTo}`, id);
    this.volumes.delete(id);
    this.clonedFrom.delete(id);
  }
  async attachVolume(id: string, instanceId: string): Promise<BlockDeviceVolume> {
    const v = this.known(id);
    if (v.attachedTo !== null)
      throw new StorageError('ALREADY_ATTACHED', `volume ${id} is attached to ${v.attachedTo}`, id);
    const a = { ...v, attachedTo: instanceId };
    this.volumes.set(id, a);
    return a;
  }
  async detachVolume(id: string, options: DetachOptions = {}): Promise<void> {
    const v = this.known(id);
    if (v.attachedTo === null) throw new StorageError('UNATTACHED', `volume ${id} is not attached`, id);
    if (v.attachedTo !== this.instanceId && options.force !== true) {
      throw new StorageError('NOT_ATTACHED_HERE', `volume ${id} is attached to ${v.attachedTo}`, id);
    }
    this.volumes.set(id, { ...v, attachedTo: null });
  }
  async listVolumes(): Promise<BlockDeviceVolume[]> {
    return [...this.volumes.values()];
  }
  async getDevicePath(id: string): Promise<string> {
    const v = this.known(id);
    if (v.attachedTo === null) throw new StorageError('UNATTACHED', `volume ${id} is not attached`, id);
    if (v.attachedTo !== this.instanceId)
      throw new StorageError('NOT_ATTACHED_HERE', `volume ${id} is attached to ${v.attachedTo}`, id);
    return `/dev/fake/${id}`;
  }
  async createSnapshot(
    blockdeviceId: string,
    snapshotId: string,
    options: SnapshotOptions = {},
  ): Promise<BlockDeviceSnapshot> {
    const taken = this.snapshots.get(snapshotId);
    if (taken !== undefined) return taken;
    const v = this.known(blockdeviceId);
    await options.pointInTimeFixed?.();
    const s: BlockDeviceSnapshot = {
      snapshotId,
      backendId: this.pool.newSnapshotBackendId(),
      datasetId: v.datasetId,
      sourceBlockdeviceId: v.blockdeviceId,
      size: v.size,
      createdAt: new Date().toISOString(),
      status: this.pool.newSnapshotStatus,
    };
    this.snapshots.set(snapshotId, s);
    return s;
  }
  async listSnapshots(): Promise<BlockDeviceSnapshot[]> {
    return [...this.snapshots.values()];
  }
  async destroySnapshot(snapshotId: string): Promise<void> {
    this.snapshots.delete(snapshotId);
  }
  async createVolumeFromSnapshot(
    snapshotId: string,
    datasetId: string,
    size: number,
    options: CreateVolumeOptions = {},
  ): Promise<BlockDeviceVolume> {
    const s = this.snapshots.get(snapshotId);
    if (s === undefined) throw new StorageError('UNKNOWN_SNAPSHOT', `no snapshot ${snapshotId}`);
    if (!(size > 0) || roundUpToUnit(size, MiB) < s.size) {
      throw new StorageError(
        'INVALID_SIZE',
        `a clone of snapshot ${snapshotId} needs at least ${s.size} bytes, not ${size}`,
      );
    }
    if (s.status === 'creating')
      throw new StorageError('SNAPSHOT_NOT_READY', `snapshot ${snapshotId} is still being made`);
    if (s.status === 'error')
      throw new StorageError('BACKEND_ERROR', `snapshot ${snapshotId} failed; it cannot be cloned`);
    const v = await this.createVolume(datasetId, size, options);
    this.clonedFrom.set(v.blockdeviceId, snapshotId);
    return v;
  }
  private known(id: string): BlockDeviceVolume {
    const v = this.volumes.get(id);
    if (v === undefined) throw new StorageError('UNKNOWN_VOLUME', `no volume ${id}`, id);
    return v;
  }
}

/** Counts the driver's listVolumes calls from now on; the returned function reads the count. */
export function countListings(driver: FakeDriver): () => number {
  let listings = 0;
  const list = driver.listVolumes.bind(driver);
  driver.listVolumes = async () => (listings++, list());
  return () => listings;
}

export class FakeHost implements HostOps {
  readonly formatted = new Set<string>();
  /** A device's file system (filesystemOf answers it, ext4 when absent; a mount of it records it as mountinfo would). */
  readonly fstypes = new Map<string, 'ext4' | 'xfs'>();
  mounts: HostMount[] = [];
  failMounts = 0;
  async listMounts(): Promise<HostMount[]> {
    return [...this.mounts];
  }
  async deviceNumber(): Promise<string | null> {
    return null;
  }
  async hasFilesystem(device: string): Promise<boolean> {
    return this.formatted.has(device);
  }
  async makeFilesystem(device: string): Promise<void> {
    if (this.formatted.has(device)) throw new StorageError('FILESYSTEM_EXISTS', 'exists');
    this.formatted.add(device);
  }
  async mkdirp(): Promise<void> {}
  readonly removedDirs: string[] = [];
  async removeEmptyDir(path: string): Promise<boolean> {
    this.removedDirs.push(path);
    return true;
  }
  async mount(device: string, mountPoint: string, fstype?: string): Promise<void> {
    if (this.failMounts > 0) {
      this.failMounts--;
      throw new StorageError('BACKEND_ERROR', 'mount: no luck');
    }
    // The type only for a device fstypes names (other tests compare the mount table without one).
    const type = this.fstypes.get(device);
    this.mounts.push({
      device,
      mountPoint,
      majorMinor: '0:0',
      ...(type !== undefined ? { fstype: fstype ?? type } : {}),
    });
  }
  async unmount(mountPoint: string): Promise<void> {
    this.mounts = this.mounts.filter((m) => m.mountPoint !== mountPoint);
  }
  async resizeFilesystem(): Promise<void> {}
  async filesystemSize(): Promise<number | null> {
    return null;
  }
  /** As linuxHostOps: from filesystemSize (which tests replace), of the type fstypes says (ext4 when absent). */
  async filesystemOf(device: string): Promise<FilesystemFound | null> {
    const size = await (this as HostOps).filesystemSize(device);
    return size === null ? null : { fstype: this.fstypes.get(device) ?? 'ext4', size };
  }
  async growUnmountedFilesystem(): Promise<void> {}
  /** Mount points frozen now, and every freeze/thaw in order (`freeze /p`, `thaw /p`). */
  readonly frozen = new Set<string>();
  readonly freezeLog: string[] = [];
  async freeze(mountPoint: string): Promise<void> {
    if (this.frozen.has(mountPoint)) throw new StorageError('BACKEND_ERROR', `${mountPoint} is frozen already`);
    this.frozen.add(mountPoint);
    this.freezeLog.push(`freeze ${mountPoint}`);
  }
  async thaw(mountPoint: string): Promise<boolean> {
    this.freezeLog.push(`thaw ${mountPoint}`);
    return this.frozen.delete(mountPoint);
  }
}

/**
 * Fake control services' long-polls: answered at once when the caller's generation is not the current one,
 * else at the next wake() or after min(timeoutMs, 200 ms) on the clock, with the snapshot then.
 */
export class FakeLongPolls {
  private waiters: Array<() => void> = [];
  constructor(private readonly clock: Clock) {}
  /** Answers every waiting poll. */
  wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
  wait(
    since: string | undefined,
    generation: number,
    timeoutMs: number,
    snapshot: () => ClusterSnapshot,
  ): Promise<ClusterSnapshot> {
    if (since !== String(generation)) return Promise.resolve(snapshot());
    return new Promise((resolve) => {
      const t = this.clock.setTimer(() => resolve(snapshot()), Math.min(timeoutMs, 200));
      this.waiters.push(() => {
        t.cancel();
        resolve(snapshot());
      });
    });
  }
}

/** A control service in memory: long-polls resolve when the generation moves. */
export class FakeControl implements ControlChannel {
  private readonly polls: FakeLongPolls;
  constructor(clock: Clock = systemClock) {
    this.polls = new FakeLongPolls(clock);
  }
  reports: NodeReport[] = [];
  private generation = 1;
  private datasets: ClusterSnapshot['datasets'] = [];
  private nodes: ClusterSnapshot['nodes'] = [];
  private snapshots: ClusterSnapshot['snapshots'];
  setDatasets(d: ClusterSnapshot['datasets']): void {
    this.datasets = d;
    this.bump();
  }
  setNodes(n: ClusterSnapshot['nodes']): void {
    this.nodes = n;
    this.bump();
  }
  /** The configured snapshots (issue 20); undefined: none, as a service without any sends. */
  setSnapshots(s: ClusterSnapshot['snapshots']): void {
    this.snapshots = s;
    this.bump();
  }
  private bump(): void {
    this.generation++;
    this.polls.wake();
  }
  private snapshot(): ClusterSnapshot {
    return {
      generation: String(this.generation),
      configuration_tag: 't',
      datasets: this.datasets,
      ...(this.snapshots !== undefined ? { snapshots: this.snapshots } : {}),
      leases: [],
      nodes: this.nodes,
    };
  }
  async reportNodeState(report: NodeReport): Promise<unknown> {
    this.reports.push(report);
    this.bump();
    return { generation: String(this.generation) };
  }
  waitForCluster(since?: string, timeoutMs = 1000): Promise<ClusterSnapshot> {
    return this.polls.wait(since, this.generation, timeoutMs, () => this.snapshot());
  }
  last(): NodeReport | undefined {
    return this.reports[this.reports.length - 1];
  }
}
