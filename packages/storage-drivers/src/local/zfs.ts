/**
 * The ZFS engine: each dataset is a file system `<pool>/flocker/<id>` (mountpoint=legacy, mounted by
 * the agent at the dataset's path) with its size enforced by refquota; snapshots are
 * `<pool>/flocker/<id>@<name>`, and a snapshot's guid is the same on the sender and every receiver.
 * A receive goes into the file system itself, kept readonly=on until promote(); ZFS discards a
 * receive that does not finish (no -s), so a cut-off stream leaves the last complete snapshot and a
 * move resumes from it. Older zfs lacks some flags (see ZfsFeatures, probed once): the engine then
 * uses their older equivalents. This machine's kernel has no ZFS module: the engine runs for real on
 * zfs-fuse (userspace ZFS, pool version 23; engines.test.ts, e2e/src/local-zfs.test.ts), and its
 * command sequences of both forms are unit-tested with faked commands (engines.test.ts).
 */
import type { Readable } from 'node:stream';
import { StorageError } from '../BlockDeviceApi';
import { execFileExec, formatCommand, runChecked, type ExecFn } from '../exec';
import {
  checkDatasetId,
  checkSnapshotName,
  LocalStorageError,
  refuseRetireInUse,
  SourceChangedAfterPromoteError,
  type CopyLineage,
  type KeptAsideCopy,
  type LocalDataset,
  type LocalEngine,
  type LocalSnapshot,
  type SendStream,
} from './engine';
import { OneAtATime } from './oneAtATime';
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
  /** What the installed zfs can do; probed (once) when not given. */
  readonly features?: ZfsFeatures;
  /** Waits between destroys refused as busy (tests: no real wait). */
  readonly sleep?: (ms: number) => Promise<void>;
  /** Where a destroy tried again is told (default: stderr). */
  readonly warn?: (message: string) => void;
}

/**
 * What the installed zfs can do. OpenZFS has all of it; zfs-fuse 0.7 (userspace ZFS over FUSE, pool
 * version 23) has none of it, and the engine uses the older equivalent, keeping the same guarantees.
 */
export interface ZfsFeatures {
  /** `zfs list -p` (exact numbers). Without: `zfs get -H -p`, one property a line, exact too. */
  readonly listExact: boolean;
  /**
   * `zfs receive -u -o readonly=on -o mountpoint=legacy`. Without: `zfs receive -F`, then both set
   * before the receive counts (a new file system inherits mountpoint=none from the flocker parent,
   * an existing one is legacy: no receive mounts it). Meanwhile the file system is writable, and
   * no live copy only by its mountpoint none (parseZfsDatasets): readonly=on is set before legacy.
   */
  readonly receiveOptions: boolean;
  /**
   * ZFS in the kernel: legacy mounts by `mount -t zfs`. Without (zfs-fuse): the daemon mounts a file
   * system (fstype fuse.zfs) at its mountpoint property: mount sets it (a second mount point is a bind
   * mount of the first), unmount sets legacy again once nothing has it mounted.
   */
  readonly kernelMounts: boolean;
}

/** The probe's answer where a flag is unknown (zfs's getopt message, the same in every version). */
const INVALID_OPTION = /invalid option/;

/** Three cheap commands: the flags the engine uses, tried; whether the kernel has a zfs file system. */
export async function probeZfsFeatures(exec: ExecFn, pool: string): Promise<ZfsFeatures> {
  const list = await exec('zfs', ['list', '-H', '-p', '-o', 'name', pool]);
  // No stream (stdin /dev/null): a zfs that knows the flags fails reading it, an older one at the flags.
  const receive = await exec('sh', [
    '-c',
    'exec zfs receive -n -u -o readonly=on -o mountpoint=legacy flocker-probe/none </dev/null',
  ]);
  const kernel = await exec('grep', ['-qw', 'zfs', '/proc/filesystems']);
  return {
    listExact: !INVALID_OPTION.test(list.stderr),
    receiveOptions: !INVALID_OPTION.test(receive.stderr),
    kernelMounts: kernel.exitCode === 0,
  };
}

/** The fstype of a mounted ZFS file system: the kernel's, or zfs-fuse's. */
const ZFS_FSTYPES = new Set(['zfs', 'fuse.zfs']);

/**
 * `zfs get -H -p -o name,property,value <props>` (one property a line) as `zfs list -H -p -o name,<props>`
 * would print it: one line a file system or snapshot, in the order of props.
 */
export function zfsGetAsList(text: string, props: readonly string[]): string {
  const rows = new Map<string, Map<string, string>>();
  for (const line of text.split('\n')) {
    const [name, property, value] = line.split('\t');
    if (name === undefined || property === undefined || value === undefined || name === '') continue;
    let row = rows.get(name);
    if (row === undefined) rows.set(name, (row = new Map<string, string>()));
    row.set(property, value.trim());
  }
  return [...rows].map(([name, row]) => [name, ...props.map((p) => row.get(p) ?? '-')].join('\t') + '\n').join('');
}

/**
 * The waits before each new try of a destroy zfs refused as busy (2.5 s in all): a mount namespace
 * made while the file system was mounted (a process's `unshare -m`) keeps its copy of the mount after
 * the host's umount, and zfs (kernel or zfs-fuse) refuses the destroy until that namespace ends. A
 * short-lived one is waited out here; a lasting one (a container's) still fails, and the agent tries
 * again at its next turn as before.
 */
const DESTROY_BUSY_WAITS_MS = [100, 200, 400, 800, 1000] as const;
const DATASET_BUSY = /dataset is busy/;

/** What listDatasets asks of each file system, in this order. */
const DATASET_PROPS = ['refquota', 'referenced', 'readonly', 'mountpoint'] as const;

/**
 * `zfs list -H -p -o name,refquota,referenced,readonly,mountpoint`: tab-separated, exact numbers,
 * refquota 0 = none. A read-only file system is no live copy: received and not promoted yet, or
 * retired. Nor is one with mountpoint none: a file system being received without -o (older zfs)
 * inherits it from the flocker parent and is writable until receive() sets readonly=on (then
 * legacy) after the stream; listed live in between, the new primary's agent mounted half a copy
 * and reported it mounted, and the receive's legacy then unmounted it (its path empty). Every
 * live copy is legacy or mounted at a path (createDataset, receive, promote).
 */
export function parseZfsDatasets(text: string, parent: string): LocalDataset[] {
  const out: LocalDataset[] = [];
  for (const line of text.split('\n')) {
    const [name, refquota, referenced, readonly, mountpoint, retiring] = line.split('\t');
    if (name === undefined || refquota === undefined || referenced === undefined) continue;
    if (!name.startsWith(`${parent}/`) || (readonly?.trim() === 'on' && !retiringMark(retiring))) continue;
    if (mountpoint?.trim() === 'none') continue;
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

/** The flocker:retiring column (OpenZFS listings): set, a retire is checking this read-only copy, still live. */
function retiringMark(value: string | undefined): boolean {
  const v = value?.trim() ?? '';
  return v !== '' && v !== '-';
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

/**
 * The live copy's lineage (LocalEngine.lineage) as user properties of its file system: zfs-fuse
 * has no `written`, and its usedbydataset is not 0 after a snapshot of an unchanged file system.
 * FROM_PROP: the guid of the snapshot promoted (set before the promote makes it writable); SAME_AS_PROP:
 * a snapshot's guid the content still is, set at the promote and at a snapshot taken while nothing
 * has it mounted, cleared before every mount (writes need one). Set in the mount queue: no mount between.
 */
const FROM_PROP = 'flocker:from';
const SAME_AS_PROP = 'flocker:same-as';
/** Set (to the snapshot it must equal) while a retire checks a read-only copy: still a live copy (parseZfsDatasets). */
const RETIRING_PROP = 'flocker:retiring';

export class ZfsEngine implements LocalEngine {
  readonly engine = 'zfs' as const;
  readonly pool: string;
  private readonly exec: ExecFn;
  private readonly spawn: SpawnFn;
  private readonly fs: HostFs;
  private readonly readMounts: ReadMounts;
  private readonly readAllMounts: ReadMounts;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly warn: (message: string) => void;
  private featuresProbe: Promise<ZfsFeatures> | undefined;
  /** Mounts and unmounts one at a time (see OneAtATime). */
  private readonly mounts = new OneAtATime();

  constructor(o: ZfsEngineOptions) {
    this.pool = o.pool.replace(/\/+$/, '');
    this.exec = o.exec ?? execFileExec;
    this.spawn = o.spawn ?? spawnProcess;
    this.fs = o.fs ?? realHostFs;
    this.readMounts = o.readMounts ?? readMounts;
    this.readAllMounts = o.readAllMounts ?? readAllNamespaceMounts;
    this.sleep = o.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.warn = o.warn ?? ((m) => console.warn(m));
    if (o.features !== undefined) this.featuresProbe = Promise.resolve(o.features);
  }

  /** Probed once (again only after a probe that could not run). */
  features(): Promise<ZfsFeatures> {
    this.featuresProbe ??= probeZfsFeatures(this.exec, this.pool.split('/')[0] ?? this.pool).catch((e: unknown) => {
      this.featuresProbe = undefined;
      throw e;
    });
    return this.featuresProbe;
  }

  private get root(): string {
    return `${this.pool}/flocker`;
  }
  fileSystem(datasetId: string): string {
    return `${this.root}/${datasetId}`;
  }
  /** Copies kept aside before a retire (keepAside): `<pool>/flocker-diverged/<id>-<guid>`, out of <pool>/flocker. */
  private get divergedRoot(): string {
    return `${this.pool}/flocker-diverged`;
  }
  /**
   * The kept-aside folder was found absent by this engine, which alone makes it (keepAside): not
   * listed again (listRetained runs every agent turn and the folder rarely exists). Cleared at each
   * keepAside before anything there; a new engine (an agent restart) looks again. A listing that
   * overlapped a keepAside (divergedTurns moved: at its start and its end) sets nothing.
   */
  private divergedAbsent = false;
  private divergedTurns = 0;

  /** The file systems kept aside (names), of one dataset or all. */
  private async divergedOf(datasetId?: string): Promise<string[]> {
    if (this.divergedAbsent) return [];
    const turns = this.divergedTurns;
    const r = await this.exec('zfs', ['list', '-H', '-t', 'filesystem', '-d', '1', '-o', 'name', this.divergedRoot]);
    if (r.exitCode !== 0) {
      if (/does not exist/.test(r.stderr)) {
        if (turns === this.divergedTurns) this.divergedAbsent = true;
        return [];
      }
      throw new LocalStorageError('POOL_UNAVAILABLE', `listing ${this.divergedRoot} failed: ${r.stderr.trim()}`);
    }
    const prefix = `${this.divergedRoot}/${datasetId ?? ''}`;
    return r.stdout
      .split('\n')
      .map((l) => l.trim())
      .filter((n) => n.startsWith(prefix) && /^[0-9a-f-]{36}-/.test(n.slice(this.divergedRoot.length + 1)));
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
    if (!(await this.features()).listExact) {
      const out = await this.zfs(
        ['get', '-H', '-p', '-r', '-d', '1', '-o', 'name,property,value', DATASET_PROPS.join(','), this.root],
        `listing ${this.root}`,
      );
      // No -t filesystem in this get: its snapshots are left out here.
      const lines = zfsGetAsList(out, DATASET_PROPS)
        .split('\n')
        .filter((l) => !(l.split('\t')[0] ?? '').includes('@'));
      return parseZfsDatasets(lines.join('\n'), this.root);
    }
    const out = await this.zfs(
      [
        'list',
        '-H',
        '-p',
        '-t',
        'filesystem',
        '-d',
        '1',
        '-o',
        `name,${DATASET_PROPS.join(',')},${RETIRING_PROP}`,
        this.root,
      ],
      `listing ${this.root}`,
    );
    return parseZfsDatasets(out, this.root);
  }

  /**
   * Every file system no listing shows live (parseZfsDatasets): read-only (retired, received), and
   * writable at mountpoint none (a receive without -o still running, or cut between its stream and
   * its readonly=on): else a deleted dataset's leftover would never be destroyed, a replica there
   * never found, and a create could take it for a new dataset's place (localChanges).
   */
  async listRetained(): Promise<string[]> {
    // OpenZFS: a copy a retire is checking (flocker:retiring set) is live, not retained (parseZfsDatasets).
    const marked = (await this.features()).listExact;
    const out = await this.zfs(
      [
        'list',
        '-H',
        '-t',
        'filesystem',
        '-d',
        '1',
        '-o',
        `name,readonly,mountpoint${marked ? `,${RETIRING_PROP}` : ''}`,
        this.root,
      ],
      `listing ${this.root}`,
    );
    const ids: string[] = [];
    for (const line of out.split('\n')) {
      const [name, readonly, mountpoint, retiring] = line.split('\t');
      if (!name?.startsWith(`${this.root}/`) || name.slice(this.root.length + 1).includes('/')) continue;
      if ((readonly?.trim() === 'on' && !retiringMark(retiring)) || mountpoint?.trim() === 'none')
        ids.push(name.slice(this.root.length + 1));
    }
    // A copy kept aside is data of the dataset too: its delete removes it.
    for (const aside of await this.divergedOf())
      ids.push(aside.slice(this.divergedRoot.length + 1, this.divergedRoot.length + 37));
    return [...new Set(ids)].sort();
  }

  /** No extra listing while the folder is known absent (divergedOf): the agent asks every turn. */
  async listKeptAside(): Promise<KeptAsideCopy[]> {
    return (await this.divergedOf())
      .sort()
      .map((path) => ({ datasetId: path.slice(this.divergedRoot.length + 1, this.divergedRoot.length + 37), path }));
  }

  async createDataset(datasetId: string, size: number): Promise<LocalDataset> {
    checkDatasetId(datasetId);
    const fs = this.fileSystem(datasetId);
    // Idempotent: an existing file system is made live as it is. The agent never asks over one it
    // lists retained (localChanges: no create over data here), so only a listing raced brings it here.
    if (await this.exists(fs)) {
      await this.resizeDataset(datasetId, size);
      const mountpoint = await this.zfs(['get', '-H', '-o', 'value', 'mountpoint', fs], `looking at ${fs}`);
      await this.legacyIfNone(fs, mountpoint.trim());
      // Made live as it is, not from a promote: nothing known of its lineage.
      for (const prop of [FROM_PROP, SAME_AS_PROP]) await this.zfs(['inherit', prop, fs], `clearing ${prop} of ${fs}`);
      await this.zfs(['set', 'readonly=off', fs], `making ${fs} writable`);
    } else await this.zfs(['create', '-o', 'mountpoint=legacy', '-o', `refquota=${size}`, fs], `creating ${fs}`);
    return (await this.listDatasets()).find((d) => d.datasetId === datasetId) ?? { datasetId, size, usedBytes: 0 };
  }

  async resizeDataset(datasetId: string, size: number): Promise<void> {
    checkDatasetId(datasetId);
    await this.zfs(['set', `refquota=${size}`, this.fileSystem(datasetId)], `limiting ${datasetId} to ${size} bytes`);
  }

  async destroyDataset(datasetId: string, o?: { keepAsides?: boolean }): Promise<void> {
    checkDatasetId(datasetId);
    const mounted = await this.mountPoints(datasetId);
    if (mounted.length > 0)
      throw new StorageError('DEVICE_BUSY', `dataset ${datasetId} is mounted at ${mounted.join(', ')}`);
    const fs = this.fileSystem(datasetId);
    if (await this.exists(fs)) await this.destroyTree(fs);
    if (o?.keepAsides !== true)
      for (const aside of await this.divergedOf(`${datasetId}-`)) await this.destroyTree(aside);
  }

  /** `zfs destroy -r`, tried again while refused as busy (DESTROY_BUSY_WAITS_MS), any other failure at once. */
  private async destroyTree(name: string): Promise<void> {
    const args = ['destroy', '-r', name];
    for (let attempt = 0; ; attempt++) {
      const r = await this.exec('zfs', args);
      if (r.exitCode === 0) return;
      const waitMs = DESTROY_BUSY_WAITS_MS[attempt];
      if (waitMs === undefined || !DATASET_BUSY.test(r.stderr)) {
        const detail = r.stderr.trim() || r.stdout.trim() || 'no output';
        throw new StorageError(
          'BACKEND_ERROR',
          `destroying ${name} failed: \`${formatCommand('zfs', args)}\` exited with ${r.exitCode}: ${detail}`,
        );
      }
      this.warn(
        `zfs destroy -r ${name}: ${r.stderr.trim()} (a mount of it left in another mount namespace?); trying again in ${waitMs} ms`,
      );
      await this.sleep(waitMs);
    }
  }

  /**
   * The file system (with its snapshots) renamed out of <pool>/flocker to
   * <pool>/flocker-diverged/<id>-<its guid>, then read-only: out of every listing of the dataset (a
   * retired file system stays a receive's target, and a replica round's `receive -F` would roll its
   * writes back). One atomic rename: a crash before it leaves the copy as it was (done again), after
   * it the copy kept (writable until the readonly=on, mounted nowhere: legacy). Refused while in use.
   */
  async keepAside(datasetId: string): Promise<string> {
    checkDatasetId(datasetId);
    // It may make the folder (or fail half way): listed again from now on.
    this.divergedAbsent = false;
    this.divergedTurns += 1;
    try {
      return await this.keepAsideNow(datasetId);
    } finally {
      this.divergedTurns += 1;
    }
  }

  private async keepAsideNow(datasetId: string): Promise<string> {
    await refuseRetireInUse(this, datasetId);
    const fs = this.fileSystem(datasetId);
    if (!(await this.exists(fs))) return this.divergedRoot;
    const guid = (await this.zfs(['get', '-H', '-p', '-o', 'value', 'guid', fs], `looking at ${fs}`)).trim();
    if (!/^\d+$/.test(guid))
      throw new LocalStorageError('POOL_UNAVAILABLE', `${fs} has no guid (${JSON.stringify(guid)})`);
    if (!(await this.exists(this.divergedRoot)))
      await this.zfs(['create', '-p', '-o', 'mountpoint=none', this.divergedRoot], `creating ${this.divergedRoot}`);
    const aside = `${this.divergedRoot}/${datasetId}-${guid}`;
    await this.zfs(['rename', fs, aside], `keeping ${fs} aside as ${aside}`);
    await this.zfs(['set', 'readonly=on', aside], `making ${aside} read-only`);
    return aside;
  }

  async retire(datasetId: string, o?: { readonly unchangedSince?: string }): Promise<void> {
    checkDatasetId(datasetId);
    if (o?.unchangedSince !== undefined) checkSnapshotName(o.unchangedSince);
    // Any mount namespace (a container's mount outlives the host's unmount): read-only under it
    // would fail its writes.
    await refuseRetireInUse(this, datasetId);
    const fs = this.fileSystem(datasetId);
    if (!(await this.exists(fs))) return;
    const since = o?.unchangedSince;
    // zfs-fuse cannot tell (no `written`): retired on the scan alone, as before.
    if (since === undefined || !(await this.features()).listExact) {
      await this.zfs(['set', 'readonly=on', fs], `retiring ${fs}`);
      return;
    }
    const [readonly, retiring] = (
      await this.zfs(['get', '-H', '-o', 'value', `readonly,${RETIRING_PROP}`, fs], `looking at ${fs}`)
    ).split('\n');
    // Retired already (read-only, no retire under way): nothing to check.
    if (readonly?.trim() === 'on' && (retiring?.trim() ?? '-') === '-') return;
    // Review RV4 finding 1: the check after readonly=on, which fails every writer's next write (open
    // fds too), so nothing written after it is acknowledged. The mark first: a crash from here to
    // its clearing leaves a read-only file system that parseZfsDatasets still lists live (the
    // agent's lineage decides again, mount() makes it writable), never one that looks retired.
    await this.zfs(['set', `${RETIRING_PROP}=${since}`, fs], `marking ${fs} retiring`);
    await this.zfs(['set', 'readonly=on', fs], `retiring ${fs}`);
    let changed: boolean | null;
    try {
      changed = await this.changedSince(datasetId, since);
    } catch (e) {
      // No answer (the sync or the get failed): not retired, and writable again (retried later).
      await this.undoRetiring(fs).catch(() => undefined);
      throw e;
    }
    if (changed !== false) {
      await this.zfs(['set', 'readonly=off', fs], `making ${fs} writable again`);
      await this.zfs(['inherit', RETIRING_PROP, fs], `clearing ${RETIRING_PROP} of ${fs}`);
      throw new SourceChangedAfterPromoteError(
        `the copy of dataset ${datasetId} here was written after the snapshot ${since} the primary's copy is made from ` +
          '(a writer no look saw): not retired, it holds writes the primary lacks',
      );
    }
    await this.zfs(['inherit', RETIRING_PROP, fs], `clearing ${RETIRING_PROP} of ${fs}`);
  }

  async mountPoints(datasetId: string): Promise<string[]> {
    checkDatasetId(datasetId);
    const fs = this.fileSystem(datasetId);
    return (await this.readMounts())
      .filter((m) => ZFS_FSTYPES.has(m.fstype) && m.source === fs)
      .map((m) => m.mountPoint)
      .sort();
  }

  async inUse(datasetId: string): Promise<boolean> {
    checkDatasetId(datasetId);
    const fs = this.fileSystem(datasetId);
    return (await this.readAllMounts()).some((m) => ZFS_FSTYPES.has(m.fstype) && m.source === fs);
  }

  async mount(datasetId: string, mountPath: string): Promise<void> {
    checkDatasetId(datasetId);
    await this.mounts.run(() => this.mountNow(datasetId, mountPath));
  }

  async unmount(mountPath: string): Promise<void> {
    await this.mounts.run(() => this.unmountNow(mountPath));
  }

  private async mountNow(datasetId: string, mountPath: string): Promise<void> {
    if ((await this.mountPoints(datasetId)).includes(mountPath)) return;
    const other = (await this.readMounts()).filter((m) => m.mountPoint === mountPath);
    if (other.length > 0)
      throw new StorageError(
        'DEVICE_BUSY',
        `${mountPath} is already a mount point (of ${other[0]?.source}); not mounting over it`,
      );
    await this.fs.mkdirp(mountPath);
    const fs = this.fileSystem(datasetId);
    // Mounted, it may be written: no longer known to be any snapshot's content.
    await this.zfs(['inherit', SAME_AS_PROP, fs], `clearing ${SAME_AS_PROP} of ${fs}`);
    if ((await this.features()).listExact) await this.undoRetiring(fs);
    if ((await this.features()).kernelMounts) {
      await runChecked(this.exec, 'mount', ['-t', 'zfs', fs, mountPath], `mounting ${datasetId}`);
      return;
    }
    // zfs-fuse: only its daemon mounts, at the mountpoint property (one place); another place is a bind mount.
    const current = await this.mountPoints(datasetId);
    if (current[0] !== undefined) {
      await runChecked(this.exec, 'mount', ['--bind', current[0], mountPath], `mounting ${datasetId}`);
      return;
    }
    await this.zfs(['set', `mountpoint=${mountPath}`, fs], `mounting ${datasetId}`);
    if (!(await this.mountPoints(datasetId)).includes(mountPath))
      await this.zfs(['mount', fs], `mounting ${datasetId}`);
  }

  /** A retire killed between its readonly=on and the end of its check: the copy is live (mounted here), writable again. */
  private async undoRetiring(fs: string): Promise<void> {
    const retiring = await this.zfs(['get', '-H', '-o', 'value', RETIRING_PROP, fs], `looking at ${fs}`);
    if (retiring.trim() === '-' || retiring.trim() === '') return;
    await this.zfs(['set', 'readonly=off', fs], `making ${fs} writable again`);
    await this.zfs(['inherit', RETIRING_PROP, fs], `clearing ${RETIRING_PROP} of ${fs}`);
  }

  private async unmountNow(mountPath: string): Promise<void> {
    const here = (await this.readMounts()).filter((m) => m.mountPoint === mountPath);
    if (here.length === 0) return;
    await runChecked(this.exec, 'umount', [mountPath], `unmounting ${mountPath}`, 'DEVICE_BUSY');
    if ((await this.features()).kernelMounts) return;
    // zfs-fuse: legacy again once nothing here has it mounted (a receive or the daemon's start mounts no legacy one).
    for (const m of here) {
      if (m.fstype !== 'fuse.zfs' || !m.source.startsWith(`${this.root}/`)) continue;
      if ((await this.readMounts()).some((x) => x.source === m.source && ZFS_FSTYPES.has(x.fstype))) continue;
      await this.zfs(['set', 'mountpoint=legacy', m.source], `unmounting ${mountPath}`);
    }
  }

  async createSnapshot(datasetId: string, name: string): Promise<LocalSnapshot> {
    checkDatasetId(datasetId);
    checkSnapshotName(name);
    const fs = this.fileSystem(datasetId);
    const snap = `${fs}@${name}`;
    if (await this.exists(snap)) return this.snapshotNamed(datasetId, name);
    // In the mount queue: no mount between the look and the mark (a snapshot taken again later is not marked).
    return this.mounts.run(async () => {
      // The host's mounts first (one read): a replica round's copy is mounted there, and the scan of every
      // mount namespace (inUse: a container's mount) is only for a copy the host has let go of.
      const idle = (await this.mountPoints(datasetId)).length === 0 && !(await this.inUse(datasetId));
      await this.zfs(['snapshot', snap], `snapshotting ${datasetId}`);
      const s = await this.snapshotNamed(datasetId, name);
      if (idle) await this.zfs(['set', `${SAME_AS_PROP}=${s.identity}`, fs], `marking ${fs} unchanged since ${name}`);
      return s;
    });
  }

  private async snapshotNamed(datasetId: string, name: string): Promise<LocalSnapshot> {
    const s = (await this.listSnapshots(datasetId)).find((x) => x.name === name);
    if (s === undefined)
      throw new LocalStorageError('UNKNOWN_SNAPSHOT', `no snapshot ${this.fileSystem(datasetId)}@${name}`);
    return s;
  }

  async listSnapshots(datasetId: string): Promise<LocalSnapshot[]> {
    checkDatasetId(datasetId);
    const fs = this.fileSystem(datasetId);
    const exact = (await this.features()).listExact;
    const r = await this.exec(
      'zfs',
      exact
        ? ['list', '-H', '-p', '-t', 'snapshot', '-d', '1', '-s', 'createtxg', '-o', 'name,guid', fs]
        : ['get', '-H', '-p', '-r', '-d', '1', '-o', 'name,property,value', 'createtxg,guid', fs],
    );
    // No file system yet (nothing received): no snapshots.
    if (r.exitCode !== 0) {
      if (/does not exist/.test(r.stderr)) return [];
      throw new LocalStorageError('POOL_UNAVAILABLE', `listing the snapshots of ${fs} failed: ${r.stderr.trim()}`);
    }
    if (exact) return parseZfsSnapshots(r.stdout, fs, datasetId);
    // Oldest first, as `-s createtxg` sorts them.
    const rows = zfsGetAsList(r.stdout, ['createtxg', 'guid'])
      .split('\n')
      .map((l) => l.split('\t'))
      .filter((f) => f[0]?.startsWith(`${fs}@`) === true)
      .sort((x, y) => Number(x[1]) - Number(y[1]));
    return parseZfsSnapshots(rows.map((f) => `${f[0]}\t${f[2]}`).join('\n'), fs, datasetId);
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
    const p = this.spawn('zfs', ['send', ...(parent !== null ? ['-i', `${fs}@${parent}`] : []), `${fs}@${name}`], {
      pooledStdout: true,
    });
    p.stdin.end();
    return { stream: p.stdout, done: p.done, abort: p.kill };
  }

  async receive(datasetId: string, name: string, identity: string, stream: Readable): Promise<LocalSnapshot> {
    checkDatasetId(datasetId);
    checkSnapshotName(name);
    const fs = this.fileSystem(datasetId);
    // -F: roll back to the stream's base (and, for a full stream, replace an unmounted stale copy);
    // -u: not mounted; readonly until promote(), so nothing writes to a copy that is not primary;
    // legacy: mounted by mount(), not by zfs (a received file system would inherit mountpoint=none).
    const options = (await this.features()).receiveOptions;
    const p = this.spawn(
      'zfs',
      options ? ['receive', '-F', '-u', '-o', 'readonly=on', '-o', 'mountpoint=legacy', fs] : ['receive', '-F', fs],
    );
    // Never into a live copy: -F would roll its writes back (a replica round or an older mover
    // sending to the primary's node). Looked at while the receive starts up (no byte fed to it
    // yet, so nothing is received before the answer), not before it: about half its cost hidden
    // (+2 ms a receive on zfs-fuse, review RL).
    if (await this.isLive(fs)) {
      p.kill();
      await p.done.catch(() => undefined);
      throw new LocalStorageError(
        'PEER_REFUSED',
        `${fs} is a live copy here: no snapshot is received into it (zfs receive -F would roll its writes back)`,
      );
    }
    await pipeInto(stream, p);
    if (!options) {
      // The same two properties, set before the receive counts (see ZfsFeatures.receiveOptions); read-only
      // first: mountpoint none until then is what keeps the copy from being listed live.
      await this.zfs(['set', 'readonly=on', fs], `making ${fs} read-only`);
      await this.zfs(['set', 'mountpoint=legacy', fs], `making ${fs} legacy-mounted`);
    }
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

  /** Whether the file system exists and is a live copy (as parseZfsDatasets tells: writable, its mountpoint not none). */
  private async isLive(fs: string): Promise<boolean> {
    const r = await this.exec('zfs', ['get', '-H', '-o', 'value', 'readonly,mountpoint', fs]);
    if (r.exitCode !== 0) return false;
    const [readonly, mountpoint] = r.stdout.split('\n').map((l) => l.trim());
    if (mountpoint === undefined || mountpoint === '' || mountpoint === 'none') return false;
    if (readonly === 'off') return true;
    // Read-only while a retire checks it (flocker:retiring): still live, never received over.
    if (readonly !== 'on' || !(await this.features()).listExact) return false;
    const m = await this.exec('zfs', ['get', '-H', '-o', 'value', RETIRING_PROP, fs]);
    return m.exitCode !== 0 || retiringMark(m.stdout);
  }

  /**
   * A file system left with mountpoint none (a receive without -o cut between the stream and its
   * `set mountpoint=legacy`) is made legacy before it is made writable: else no listing would show
   * it live (parseZfsDatasets). Never on a mounted one (a promote again after the mount): that
   * would unmount it on zfs-fuse.
   */
  private async legacyIfNone(fs: string, mountpoint: string | undefined): Promise<void> {
    if (mountpoint === 'none') await this.zfs(['set', 'mountpoint=legacy', fs], `making ${fs} legacy-mounted`);
  }

  /** The pool's `available` (bytes, exact: -p): what new data may still take (refquotas are limits, not reservations). */
  async availableBytes(): Promise<number> {
    const text = await this.zfs(['get', '-H', '-p', '-o', 'value', 'available', this.pool], `looking at ${this.pool}`);
    const bytes = Number(text.trim());
    if (!Number.isSafeInteger(bytes) || bytes < 0)
      throw new LocalStorageError(
        'POOL_UNAVAILABLE',
        `zfs get available ${this.pool} answered ${JSON.stringify(text.trim())}`,
      );
    return bytes;
  }

  async lineage(datasetId: string): Promise<CopyLineage | null> {
    checkDatasetId(datasetId);
    const fs = this.fileSystem(datasetId);
    if (!(await this.isLive(fs))) return null;
    const [props, snapshots] = await Promise.all([
      this.zfs(['get', '-H', '-o', 'property,value', `${FROM_PROP},${SAME_AS_PROP}`, fs], `looking at ${fs}`),
      this.listSnapshots(datasetId),
    ]);
    const value = (prop: string): string | null => {
      const v = props
        .split('\n')
        .find((l) => l.split('\t')[0] === prop)
        ?.split('\t')[1]
        ?.trim();
      return v === undefined || v === '' || v === '-' ? null : v;
    };
    // Mounted anywhere: it may be written any time.
    const marked = (await this.inUse(datasetId)) ? null : value(SAME_AS_PROP);
    const sameAs = marked !== null && (await this.unwrittenSince(fs, marked, snapshots)) ? marked : null;
    return { from: value(FROM_PROP), sameAs, snapshots: snapshots.map((s) => s.identity) };
  }

  /**
   * The same-as mark is cleared before every mount the engine makes, not by one it did not (an
   * admin's `zfs mount` or `mount -t zfs`, a write, an unmount). OpenZFS (the `list -p` one) also
   * says what was written since the snapshot: `written@<snapshot>` 0, else the mark does not hold
   * (the snapshot gone: not known). zfs-fuse has no `written` property: the mark is kept there, and
   * a mount outside Flocker voids it (packages/storage-drivers/README.md).
   */
  private async unwrittenSince(fs: string, identity: string, snapshots: readonly LocalSnapshot[]): Promise<boolean> {
    if (!(await this.features()).listExact) return true;
    const snapshot = snapshots.find((s) => s.identity === identity);
    if (snapshot === undefined) return false;
    // `written` counts synced txgs only: a write of the last seconds would read as none (as changedSince).
    const poolName = this.pool.split('/')[0] ?? this.pool;
    await runChecked(this.exec, 'zpool', ['sync', poolName], `writing out ${poolName}`);
    const text = await this.zfs(['get', '-H', '-p', '-o', 'value', `written@${snapshot.name}`, fs], `looking at ${fs}`);
    return text.trim() === '0';
  }

  /**
   * OpenZFS: `written@<snapshot>` not 0 (any block written since, an atime update too). It counts
   * synced transaction groups only: the pool is synced first (a write() returned counts). zfs-fuse
   * has no `written`: null (not known). The snapshot gone: changed (not provably final).
   */
  async changedSince(datasetId: string, name: string): Promise<boolean | null> {
    checkDatasetId(datasetId);
    checkSnapshotName(name);
    if (!(await this.features()).listExact) return null;
    const fs = this.fileSystem(datasetId);
    const poolName = this.pool.split('/')[0] ?? this.pool;
    await runChecked(this.exec, 'zpool', ['sync', poolName], `writing out ${poolName}`);
    const r = await this.exec('zfs', ['get', '-H', '-p', '-o', 'value', `written@${name}`, fs]);
    if (r.exitCode !== 0) {
      if (!(await this.exists(fs)))
        throw new LocalStorageError('UNKNOWN_DATASET', `no dataset ${datasetId} in ${this.pool}`);
      if (!(await this.exists(`${fs}@${name}`))) return true;
      throw new LocalStorageError('POOL_UNAVAILABLE', `zfs get written@${name} ${fs} failed: ${r.stderr.trim()}`);
    }
    const written = Number(r.stdout.trim());
    if (r.stdout.trim() === '' || !Number.isSafeInteger(written) || written < 0)
      throw new LocalStorageError(
        'POOL_UNAVAILABLE',
        `zfs get written@${name} ${fs} answered ${JSON.stringify(r.stdout.trim())}`,
      );
    return written > 0;
  }

  async promote(datasetId: string, name: string, size: number): Promise<LocalDataset> {
    checkDatasetId(datasetId);
    checkSnapshotName(name);
    const fs = this.fileSystem(datasetId);
    // The snapshot is there (else the get fails) and the file system's mountpoint, in one command.
    const r = await this.exec('zfs', ['get', '-H', '-o', 'name,value', 'mountpoint', `${fs}@${name}`, fs]);
    if (r.exitCode !== 0) throw new LocalStorageError('UNKNOWN_SNAPSHOT', `no snapshot ${fs}@${name}`);
    const mountpoint = r.stdout
      .split('\n')
      .find((l) => l.split('\t')[0] === fs)
      ?.split('\t')[1];
    await this.legacyIfNone(fs, mountpoint?.trim());
    // Its lineage before it is writable (a crash between: not known, never wrong); a promote again leaves it.
    if (!(await this.isLive(fs))) {
      const guid = (await this.snapshotNamed(datasetId, name)).identity;
      await this.zfs(['set', `${FROM_PROP}=${guid}`, fs], `recording what ${fs} is made from`);
      await this.zfs(['set', `${SAME_AS_PROP}=${guid}`, fs], `marking ${fs} unchanged since ${name}`);
    }
    // The received data is the file system already: writable, with its limit.
    await this.zfs(['set', 'readonly=off', fs], `making ${fs} writable`);
    await this.resizeDataset(datasetId, size);
    return (await this.listDatasets()).find((d) => d.datasetId === datasetId) ?? { datasetId, size, usedBytes: 0 };
  }
}

/**
 * Whether this host can run the ZFS engine for real: `zpool list` answers where the kernel has the
 * zfs module, or where the zfs-fuse daemon runs (zfs-fuse has no `zfs version`).
 */
export async function zfsAvailable(exec: ExecFn = execFileExec): Promise<{ ok: true } | { ok: false; reason: string }> {
  try {
    const r = await exec('zpool', ['list', '-H', '-o', 'name']);
    if (r.exitCode !== 0)
      return {
        ok: false,
        reason: `zpool list exited with ${r.exitCode} (no zfs kernel module, no zfs-fuse daemon?): ${r.stderr.trim()}`,
      };
  } catch (e) {
    return { ok: false, reason: `no zpool program: ${e instanceof Error ? e.message : String(e)}` };
  }
  return { ok: true };
}
