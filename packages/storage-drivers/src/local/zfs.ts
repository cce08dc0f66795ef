/**
 * The ZFS engine: each dataset is a file system `<pool>/flocker/<id>` (mountpoint=legacy, mounted by
 * the agent at the dataset's path) with its size enforced by refquota; snapshots are
 * `<pool>/flocker/<id>@<name>`, and a snapshot's guid is the same on the sender and every receiver.
 * A receive goes into the file system itself, kept readonly=on until promote(); ZFS discards a
 * receive that does not finish (no -s), so a cut-off stream leaves the last complete snapshot.
 * Written against the same interface as the btrfs engine; this machine's kernel has no ZFS module,
 * so its command sequences and parsing are unit-tested (zfs.test.ts) and it runs for real only where
 * `zfs` exists.
 */
import type { Readable } from 'node:stream';
import { StorageError } from '../BlockDeviceApi';
import { execFileExec, runChecked, type ExecFn } from '../exec';
import {
  checkDatasetId,
  checkSnapshotName,
  LocalStorageError,
  type LocalDataset,
  type LocalEngine,
  type LocalSnapshot,
  type SendStream,
} from './engine';
import { realHostFs, type HostFs } from './hostFs';
import { readAllNamespaceMounts, readMounts, spawnProcess, type ReadMounts, type SpawnFn } from './processes';
import { pipeInto } from './streams';

export interface ZfsEngineOptions {
  /** A pool or file system name (agent.yml `dataset.pool`), e.g. `tank` or `tank/data`. */
  readonly pool: string;
  readonly exec?: ExecFn;
  readonly spawn?: SpawnFn;
  readonly fs?: HostFs;
  readonly readMounts?: ReadMounts;
  /** Every mount namespace's mounts (inUse). */
  readonly readAllMounts?: ReadMounts;
}

/**
 * `zfs list -H -p -o name,refquota,referenced,readonly`: tab-separated, exact numbers, refquota 0 =
 * none. A read-only file system is no live copy: received and not promoted yet, or retired.
 */
export function parseZfsDatasets(text: string, parent: string): LocalDataset[] {
  const out: LocalDataset[] = [];
  for (const line of text.split('\n')) {
    const [name, refquota, referenced, readonly] = line.split('\t');
    if (name === undefined || refquota === undefined || referenced === undefined) continue;
    if (!name.startsWith(`${parent}/`) || readonly?.trim() === 'on') continue;
    const datasetId = name.slice(parent.length + 1);
    if (datasetId.includes('/')) continue;
    const quota = Number(refquota);
    out.push({
      datasetId,
      size: Number.isFinite(quota) && quota > 0 ? quota : null,
      usedBytes: Number(referenced) || 0,
    });
  }
  return out.sort((a, b) => (a.datasetId < b.datasetId ? -1 : 1));
}

/** `zfs list -H -p -t snapshot -o name,guid -s createtxg`: oldest first. */
export function parseZfsSnapshots(text: string, fs: string, datasetId: string): LocalSnapshot[] {
  const out: LocalSnapshot[] = [];
  for (const line of text.split('\n')) {
    const [name, guid] = line.split('\t');
    if (name === undefined || guid === undefined || !name.startsWith(`${fs}@`)) continue;
    out.push({ datasetId, name: name.slice(fs.length + 1), identity: guid.trim(), received: false });
  }
  return out;
}

export class ZfsEngine implements LocalEngine {
  readonly engine = 'zfs' as const;
  readonly pool: string;
  private readonly exec: ExecFn;
  private readonly spawn: SpawnFn;
  private readonly fs: HostFs;
  private readonly readMounts: ReadMounts;
  private readonly readAllMounts: ReadMounts;

  constructor(o: ZfsEngineOptions) {
    this.pool = o.pool.replace(/\/+$/, '');
    this.exec = o.exec ?? execFileExec;
    this.spawn = o.spawn ?? spawnProcess;
    this.fs = o.fs ?? realHostFs;
    this.readMounts = o.readMounts ?? readMounts;
    this.readAllMounts = o.readAllMounts ?? readAllNamespaceMounts;
  }

  private get root(): string {
    return `${this.pool}/flocker`;
  }
  fileSystem(datasetId: string): string {
    return `${this.root}/${datasetId}`;
  }

  private zfs(args: readonly string[], what: string): Promise<string> {
    return runChecked(this.exec, 'zfs', args, what);
  }

  private async exists(name: string): Promise<boolean> {
    return (await this.exec('zfs', ['list', '-H', '-o', 'name', name])).exitCode === 0;
  }

  async prepare(): Promise<void> {
    const poolName = this.pool.split('/')[0] ?? this.pool;
    const r = await this.exec('zpool', ['list', '-H', '-o', 'name', poolName]);
    if (r.exitCode !== 0)
      throw new LocalStorageError(
        'POOL_UNAVAILABLE',
        `no ZFS pool ${poolName}: ${r.stderr.trim() || 'zpool list failed'}`,
      );
    if (!(await this.exists(this.root)))
      await this.zfs(['create', '-p', '-o', 'mountpoint=none', this.root], `creating ${this.root}`);
  }

  async listDatasets(): Promise<LocalDataset[]> {
    const out = await this.zfs(
      ['list', '-H', '-p', '-t', 'filesystem', '-d', '1', '-o', 'name,refquota,referenced,readonly', this.root],
      `listing ${this.root}`,
    );
    return parseZfsDatasets(out, this.root);
  }

  async listRetained(): Promise<string[]> {
    const out = await this.zfs(
      ['list', '-H', '-t', 'filesystem', '-d', '1', '-o', 'name,readonly', this.root],
      `listing ${this.root}`,
    );
    const ids: string[] = [];
    for (const line of out.split('\n')) {
      const [name, readonly] = line.split('\t');
      if (name?.startsWith(`${this.root}/`) && readonly?.trim() === 'on') ids.push(name.slice(this.root.length + 1));
    }
    return ids.sort();
  }

  async createDataset(datasetId: string, size: number): Promise<LocalDataset> {
    checkDatasetId(datasetId);
    const fs = this.fileSystem(datasetId);
    // Only ever asked when no node holds a live copy: a retired file system here is that copy.
    if (await this.exists(fs)) {
      await this.resizeDataset(datasetId, size);
      await this.zfs(['set', 'readonly=off', fs], `making ${fs} writable`);
    } else await this.zfs(['create', '-o', 'mountpoint=legacy', '-o', `refquota=${size}`, fs], `creating ${fs}`);
    return (await this.listDatasets()).find((d) => d.datasetId === datasetId) ?? { datasetId, size, usedBytes: 0 };
  }

  async resizeDataset(datasetId: string, size: number): Promise<void> {
    checkDatasetId(datasetId);
    await this.zfs(['set', `refquota=${size}`, this.fileSystem(datasetId)], `limiting ${datasetId} to ${size} bytes`);
  }

  async destroyDataset(datasetId: string): Promise<void> {
    checkDatasetId(datasetId);
    const mounted = await this.mountPoints(datasetId);
    if (mounted.length > 0)
      throw new StorageError('DEVICE_BUSY', `dataset ${datasetId} is mounted at ${mounted.join(', ')}`);
    const fs = this.fileSystem(datasetId);
    if (await this.exists(fs)) await this.zfs(['destroy', '-r', fs], `destroying ${fs}`);
  }

  async retire(datasetId: string): Promise<void> {
    checkDatasetId(datasetId);
    const mounted = await this.mountPoints(datasetId);
    if (mounted.length > 0)
      throw new StorageError('DEVICE_BUSY', `dataset ${datasetId} is mounted at ${mounted.join(', ')}`);
    const fs = this.fileSystem(datasetId);
    if (await this.exists(fs)) await this.zfs(['set', 'readonly=on', fs], `retiring ${fs}`);
  }

  async mountPoints(datasetId: string): Promise<string[]> {
    checkDatasetId(datasetId);
    const fs = this.fileSystem(datasetId);
    return (await this.readMounts())
      .filter((m) => m.fstype === 'zfs' && m.source === fs)
      .map((m) => m.mountPoint)
      .sort();
  }

  async inUse(datasetId: string): Promise<boolean> {
    checkDatasetId(datasetId);
    const fs = this.fileSystem(datasetId);
    return (await this.readAllMounts()).some((m) => m.fstype === 'zfs' && m.source === fs);
  }

  async mount(datasetId: string, mountPath: string): Promise<void> {
    checkDatasetId(datasetId);
    if ((await this.mountPoints(datasetId)).includes(mountPath)) return;
    const other = (await this.readMounts()).filter((m) => m.mountPoint === mountPath);
    if (other.length > 0)
      throw new StorageError(
        'DEVICE_BUSY',
        `${mountPath} is already a mount point (of ${other[0]?.source}); not mounting over it`,
      );
    await this.fs.mkdirp(mountPath);
    await runChecked(this.exec, 'mount', ['-t', 'zfs', this.fileSystem(datasetId), mountPath], `mounting ${datasetId}`);
  }

  async unmount(mountPath: string): Promise<void> {
    if (!(await this.readMounts()).some((m) => m.mountPoint === mountPath)) return;
    await runChecked(this.exec, 'umount', [mountPath], `unmounting ${mountPath}`, 'DEVICE_BUSY');
  }

  async createSnapshot(datasetId: string, name: string): Promise<LocalSnapshot> {
    checkDatasetId(datasetId);
    checkSnapshotName(name);
    const snap = `${this.fileSystem(datasetId)}@${name}`;
    if (!(await this.exists(snap))) await this.zfs(['snapshot', snap], `snapshotting ${datasetId}`);
    const s = (await this.listSnapshots(datasetId)).find((x) => x.name === name);
    if (s === undefined) throw new LocalStorageError('UNKNOWN_SNAPSHOT', `no snapshot ${snap}`);
    return s;
  }

  async listSnapshots(datasetId: string): Promise<LocalSnapshot[]> {
    checkDatasetId(datasetId);
    const fs = this.fileSystem(datasetId);
    const r = await this.exec('zfs', [
      'list',
      '-H',
      '-p',
      '-t',
      'snapshot',
      '-d',
      '1',
      '-s',
      'createtxg',
      '-o',
      'name,guid',
      fs,
    ]);
    // No file system yet (nothing received): no snapshots.
    if (r.exitCode !== 0) {
      if (/does not exist/.test(r.stderr)) return [];
      throw new LocalStorageError('POOL_UNAVAILABLE', `listing the snapshots of ${fs} failed: ${r.stderr.trim()}`);
    }
    return parseZfsSnapshots(r.stdout, fs, datasetId);
  }

  async destroySnapshot(datasetId: string, name: string): Promise<void> {
    checkDatasetId(datasetId);
    checkSnapshotName(name);
    const snap = `${this.fileSystem(datasetId)}@${name}`;
    if (await this.exists(snap)) await this.zfs(['destroy', snap], `destroying ${snap}`);
  }

  send(datasetId: string, name: string, parent: string | null): SendStream {
    checkDatasetId(datasetId);
    checkSnapshotName(name);
    if (parent !== null) checkSnapshotName(parent);
    const fs = this.fileSystem(datasetId);
    const p = this.spawn('zfs', ['send', ...(parent !== null ? ['-i', `${fs}@${parent}`] : []), `${fs}@${name}`]);
    p.stdin.end();
    return { stream: p.stdout, done: p.done, abort: p.kill };
  }

  async receive(datasetId: string, name: string, identity: string, stream: Readable): Promise<LocalSnapshot> {
    checkDatasetId(datasetId);
    checkSnapshotName(name);
    const fs = this.fileSystem(datasetId);
    // -F: roll back to the stream's base (and, for a full stream, replace an unmounted stale copy);
    // -u: not mounted; readonly until promote(), so nothing writes to a copy that is not primary.
    const p = this.spawn('zfs', ['receive', '-F', '-u', '-o', 'readonly=on', fs]);
    await pipeInto(stream, p);
    const got = (await this.listSnapshots(datasetId)).find((s) => s.name === name);
    if (got?.identity !== identity) {
      if (got !== undefined) await this.destroySnapshot(datasetId, name);
      throw new LocalStorageError(
        'INTEGRITY',
        `the received ${fs}@${name} is ${got === undefined ? 'missing' : `guid ${got.identity}, not ${identity}`}`,
      );
    }
    return { ...got, received: true };
  }

  async promote(datasetId: string, name: string, size: number): Promise<LocalDataset> {
    checkDatasetId(datasetId);
    checkSnapshotName(name);
    const fs = this.fileSystem(datasetId);
    if (!(await this.exists(`${fs}@${name}`)))
      throw new LocalStorageError('UNKNOWN_SNAPSHOT', `no snapshot ${fs}@${name}`);
    // The received data is the file system already: writable, with its limit.
    await this.zfs(['set', 'readonly=off', fs], `making ${fs} writable`);
    await this.resizeDataset(datasetId, size);
    return (await this.listDatasets()).find((d) => d.datasetId === datasetId) ?? { datasetId, size, usedBytes: 0 };
  }
}

/** Whether this host can run the ZFS engine for real (the `zfs` program and the kernel module). */
export async function zfsAvailable(exec: ExecFn = execFileExec): Promise<{ ok: true } | { ok: false; reason: string }> {
  try {
    const r = await exec('zfs', ['version']);
    if (r.exitCode !== 0) return { ok: false, reason: `zfs version exited with ${r.exitCode}: ${r.stderr.trim()}` };
  } catch (e) {
    return { ok: false, reason: `no zfs program: ${e instanceof Error ? e.message : String(e)}` };
  }
  try {
    const modules = await exec('sh', ['-c', 'grep -qw zfs /proc/filesystems']);
    if (modules.exitCode !== 0) return { ok: false, reason: 'the kernel has no zfs module (not in /proc/filesystems)' };
  } catch {
    return { ok: false, reason: 'cannot read /proc/filesystems' };
  }
  return { ok: true };
}
