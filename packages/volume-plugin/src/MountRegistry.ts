/**
 * Which containers (Docker mount IDs) use which volume on this host: the plugin's only
 * own state, persisted after every change so counts survive a plugin restart.
 *
 * How it is written: two slot files (`<file>` and `<file>.1`) take turns, each write
 * a numbered snapshot put over the older slot in place (pwrite at offset 0, padded
 * with spaces to the slot's length, never truncated, with a checksum), and loading
 * takes the valid snapshot with the highest number. A write cut short (the plugin killed in the
 * middle of a multi-page write) spoils only the slot it went to; the other holds
 * the state before it, which is the right one, since Docker had not been answered.
 * Replacing the file instead (temp file and rename, or truncate and write) makes
 * ext4 flush it at once (auto_da_alloc): 0.5 ms idle, several under a `docker run`,
 * four times per `docker run`, on Docker's critical path; a write in place costs
 * microseconds. No fsync: the IDs only matter while this boot's containers exist,
 * so a power loss makes them worthless anyway. Written synchronously, so writes
 * land in call order. A change is made in memory only once written: when the disk
 * is full the call throws (Docker gets an error) and nothing changed.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { writeAllSync, type SyncWriteOps } from '@flocker/api';

const Volumes = z.record(
  z.string(),
  z.object({
    name: z.string(),
    ids: z.array(z.string()),
    /** When each ID's Mount was recorded (ms since the epoch); absent in files of earlier versions. */
    added: z.record(z.string(), z.number()).optional(),
    /**
     * IDs whose Mount was still in progress (recorded before its lease was asked for, its answer not sent yet);
     * written only when there are some. An older plugin takes a slot holding this key as invalid and loads the
     * other one, the state before that Mount.
     */
    pending: z.array(z.string()).optional(),
  }),
);
type Volumes = z.infer<typeof Volumes>;

const MountFile = z
  .object({
    version: z.literal(1),
    /** Which write this is; absent in the single file of earlier versions (counts as 0). */
    seq: z.number().int().nonnegative().optional(),
    volumes: Volumes,
    /** checksumOf(seq, volumes): a torn write (new start, old end) can still parse. */
    sum: z.string().optional(),
  })
  .refine((f) => f.seq === undefined || f.sum === checksumOf(f.seq, f.volumes), { message: 'checksum mismatch' });
type MountFile = z.infer<typeof MountFile>;

function checksumOf(seq: number, volumes: Volumes): string {
  return createHash('sha256')
    .update(JSON.stringify([seq, volumes]))
    .digest('hex')
    .slice(0, 16);
}

export interface MountEntry {
  datasetId: string;
  name: string;
  ids: readonly string[];
}

/** Mount IDs of one volume, each with when its Mount was recorded (ms since the epoch). */
interface VolumeMounts {
  name: string;
  ids: Map<string, number>;
  /** The IDs among `ids` whose Mount has not been answered (see addPending). */
  pending: ReadonlySet<string>;
}

export class MountRegistry {
  private constructor(
    private readonly file: string,
    private volumes: Map<string, VolumeMounts>,
    /** The number of the last snapshot written (or loaded). */
    private seq: number,
    private readonly now: () => number,
    private readonly writeOps: SyncWriteOps,
    /**
     * The mount IDs loaded from the file, as `<datasetId> <id>`: recorded by an earlier plugin process,
     * so answered before this process started, or never (Docker then retries the Mount here, which records
     * the ID again as this process's own).
     */
    private readonly inherited: Set<string> = new Set(),
  ) {}

  /** The two slot files behind `file`. */
  static slots(file: string): readonly [string, string] {
    return [file, `${file}.1`];
  }

  /**
   * The latest valid snapshot behind `file` (undefined if none), and the slots that
   * exist but hold no valid snapshot.
   */
  static read(file: string): { latest: MountFile | undefined; corrupt: string[] } {
    let latest: MountFile | undefined;
    const corrupt: string[] = [];
    for (const slot of MountRegistry.slots(file)) {
      let text: string;
      try {
        text = fs.readFileSync(slot, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      let doc: unknown;
      try {
        doc = JSON.parse(text);
      } catch {
        doc = undefined;
      }
      const parsed = MountFile.safeParse(doc);
      if (!parsed.success) corrupt.push(slot);
      else if (latest === undefined || (parsed.data.seq ?? 0) > (latest.seq ?? 0)) latest = parsed.data;
    }
    return { latest, corrupt };
  }

  /**
   * Load the registry. No slot file is an empty registry. A slot that is unreadable
   * while the other is fine is simply overwritten by the next write; when none is
   * readable (say, torn by a power loss) they are moved aside to `<slot>.corrupt` and
   * reported through `onCorrupt`, and the registry starts empty, since after a reboot
   * no container holds a mount.
   */
  static async load(
    file: string,
    onCorrupt: (problem: string) => void = () => undefined,
    now: () => number = Date.now,
    /** How slot writes reach the disk (node:fs); tests put a disk that runs full here. */
    writeOps: SyncWriteOps = fs,
  ): Promise<MountRegistry> {
    const { latest, corrupt } = MountRegistry.read(file);
    const volumes = new Map<string, VolumeMounts>();
    const inherited = new Set<string>();
    if (latest !== undefined) {
      // An ID of an earlier version's file has no time: it counts as recorded now (kept the longest).
      const loaded = now();
      for (const [datasetId, v] of Object.entries(latest.volumes)) {
        const ids = new Map(v.ids.map((id) => [id, v.added?.[id] ?? loaded]));
        volumes.set(datasetId, { name: v.name, ids, pending: new Set((v.pending ?? []).filter((id) => ids.has(id))) });
        for (const id of v.ids) inherited.add(inheritedKey(datasetId, id));
      }
    } else if (corrupt.length > 0) {
      for (const slot of corrupt) await fs.promises.rename(slot, `${slot}.corrupt`);
      onCorrupt(
        `${corrupt.join(' and ')} ${corrupt.length > 1 ? 'are' : 'is'} not a valid mount registry (moved to .corrupt); starting with no mounts`,
      );
    }
    await fs.promises.mkdir(path.dirname(file), { recursive: true });
    return new MountRegistry(file, volumes, latest?.seq ?? 0, now, writeOps, inherited);
  }

  count(datasetId: string): number {
    return this.volumes.get(datasetId)?.ids.size ?? 0;
  }

  entries(): MountEntry[] {
    return [...this.volumes].map(([datasetId, v]) => ({ datasetId, name: v.name, ids: [...v.ids.keys()] }));
  }

  /** When the Mount of each of the dataset's IDs was recorded (ms since the epoch). */
  mountedAt(datasetId: string): ReadonlyMap<string, number> {
    return new Map(this.volumes.get(datasetId)?.ids);
  }

  /**
   * The dataset's mount IDs that were loaded from the file (recorded by an earlier plugin process) and not
   * recorded again since: their Mounts were answered before this process started (or never will be).
   */
  inheritedIds(datasetId: string): ReadonlySet<string> {
    const ids = this.volumes.get(datasetId)?.ids.keys() ?? [];
    return new Set([...ids].filter((id) => this.inherited.has(inheritedKey(datasetId, id))));
  }

  /** Dataset id of the volume with this name that has mount IDs here, if any. */
  findByName(name: string): string | undefined {
    for (const [datasetId, v] of this.volumes) if (v.name === name) return datasetId;
    return undefined;
  }

  /** Records a Mount as answered (about to be: written before Docker gets the answer). */
  async add(datasetId: string, name: string, id: string): Promise<number> {
    const v = this.volumes.get(datasetId);
    const ids = new Map(v?.ids);
    ids.set(id, this.now());
    const pending = new Set(v?.pending);
    pending.delete(id);
    this.commit(datasetId, { name: v?.name ?? name, ids, pending });
    // Recorded by this process now: a Mount of its own, however Docker reused the ID.
    this.inherited.delete(inheritedKey(datasetId, id));
    return ids.size;
  }

  /**
   * Records a Mount as begun, before anything of it (its lease, a move) is done: a crash before its answer then
   * leaves an ID the next start knows was never answered (inheritedPending), so whatever the Mount did is undone
   * there, not left held for good (review T5 F9). An ID already recorded as answered stays so (Docker reusing the
   * ID of a mount it had): whether it recorded the ID, which the Mount then forgets if it fails.
   */
  async addPending(datasetId: string, name: string, id: string): Promise<boolean> {
    const v = this.volumes.get(datasetId);
    if (v !== undefined && v.ids.has(id) && !v.pending.has(id)) return false;
    const ids = new Map(v?.ids);
    ids.set(id, this.now());
    this.commit(datasetId, { name: v?.name ?? name, ids, pending: new Set(v?.pending).add(id) });
    this.inherited.delete(inheritedKey(datasetId, id));
    return true;
  }

  /**
   * The dataset's IDs whose Mount an earlier plugin process began and never answered (it died first): no container
   * got the volume from them. Docker's retry of such a Mount here records the ID again as this process's own.
   */
  inheritedPending(datasetId: string): string[] {
    const v = this.volumes.get(datasetId);
    return [...(v?.pending ?? [])].filter((id) => this.inherited.has(inheritedKey(datasetId, id)));
  }

  /**
   * Forget one mount ID; returns how many remain for the dataset. An entry left with no
   * IDs stays (persisted) until `dropIfUnused`: it records "lease release pending", so a
   * crash before the release is finished on the next start.
   */
  async remove(datasetId: string, id: string): Promise<number> {
    return this.removeIds(datasetId, [id]);
  }

  /** Forget several mount IDs at once (one write); returns how many remain. The entry stays as with `remove`. */
  async removeIds(datasetId: string, ids: readonly string[]): Promise<number> {
    const v = this.volumes.get(datasetId);
    if (!v) return 0;
    const kept = new Map(v.ids);
    const pending = new Set(v.pending);
    for (const id of ids) {
      kept.delete(id);
      pending.delete(id);
    }
    this.commit(datasetId, { name: v.name, ids: kept, pending });
    return kept.size;
  }

  /** Forget the dataset if no mount ID came back meanwhile. */
  async dropIfUnused(datasetId: string): Promise<void> {
    if (this.volumes.get(datasetId)?.ids.size === 0) await this.drop(datasetId);
  }

  async drop(datasetId: string): Promise<void> {
    if (this.volumes.has(datasetId)) this.commit(datasetId, undefined);
  }

  /**
   * Makes a change only once it is written: the new state goes to disk first and
   * replaces the one in memory after. A failed write (ENOSPC) throws and changes
   * nothing, so memory, the newest valid slot and what Docker was last answered agree.
   */
  private commit(datasetId: string, entry: VolumeMounts | undefined): void {
    const volumes = new Map(this.volumes);
    if (entry === undefined) volumes.delete(datasetId);
    else volumes.set(datasetId, entry);
    const seq = this.seq + 1;
    const doc: Volumes = Object.fromEntries(
      [...volumes].map(([id, v]) => {
        const ids = [...v.ids.keys()].sort();
        const pending = ids.filter((x) => v.pending.has(x));
        return [
          id,
          {
            name: v.name,
            ids,
            ...(ids.length > 0 ? { added: Object.fromEntries(ids.map((x) => [x, v.ids.get(x) ?? 0])) } : {}),
            ...(pending.length > 0 ? { pending } : {}),
          },
        ];
      }),
    );
    const snapshot: MountFile = { version: 1, seq, volumes: doc, sum: checksumOf(seq, doc) };
    writeInPlaceSync(MountRegistry.slots(this.file)[seq % 2]!, JSON.stringify(snapshot, null, 2) + '\n', this.writeOps);
    this.seq = seq;
    this.volumes = volumes;
  }
}

function inheritedKey(datasetId: string, id: string): string {
  return `${datasetId} ${id}`;
}

/**
 * Writes `text` over the start of `file` without truncating it, padded with spaces
 * to the file's current length (JSON allows trailing whitespace); makes the file,
 * and its directory if it went away.
 */
export function writeInPlaceSync(file: string, text: string, ops: SyncWriteOps = fs): void {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
  }
  try {
    const body = Buffer.from(text);
    const size = fs.fstatSync(fd).size;
    const data = body.length >= size ? body : Buffer.concat([body, Buffer.alloc(size - body.length, ' ')]);
    // Every byte (a short write is continued); a failure throws: the other slot still holds the last state.
    writeAllSync(fd, data, 0, ops, file);
  } finally {
    fs.closeSync(fd);
  }
}
