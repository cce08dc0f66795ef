/**
 * Spare volumes of the loopback pool (issue 23): pre-made, pre-formatted images that a new
 * dataset claims instead of waiting for truncate + losetup + mkfs. `<root>/spares/<id>.img`,
 * kept out of `<root>/volumes/`, so the volume listing, repair, orphan removal, fencing and
 * every report never see them (spares are no datasets, and appear in no API).
 *
 * Made by `mkfs.ext4` on the image file itself, never through a loop device: nothing can write
 * it afterwards but a mount (or someone binding it by hand). The last step of a make sets the
 * file's mtime to SPARE_MTIME; every write to the file (a mount through a loop device, a raw
 * write) sets it to now. A claim (see LoopbackDriver.claimSpare) takes a spare only when its
 * superblock still says "never mounted" (ext4 magic, mount count 0, no last mount time), it
 * spans the whole file, and the file's mtime is still SPARE_MTIME (spareVerdict); a spare
 * failing that is destroyed, never handed out.
 *
 * Crash safety: a spare is made under `.making-<tag>-<id>.img` (tag: this instance) and renamed
 * to `<id>.img` only once whole (mkfs flushed, mtime set; the directory fsynced), so a `<id>.img`
 * here is always a complete spare. A claim holds the pool lock and moves the image into
 * `volumes/` before its record is written: a crash in between leaves an image without a record,
 * which repair() removes as an orphan (its mtime is SPARE_MTIME, long past the orphan age), never a
 * record without an image; a spare moved is gone from here, so no spare is claimed twice. A
 * crashed make leaves a `.making-` file: the next start of the same instance removes its own
 * (tidySpares), any instance removes another's once it is ORPHAN_AGE_MS old.
 *
 * Pre-attached (issue 23): a make also binds the image to a loop device (before its rename to
 * `<id>.img`, so a listed spare has its device, or none when the attach failed), and a claim
 * hands that device out with the volume, attached to the claiming instance in the one record it
 * writes: no losetup, no second lock and record write on the critical path. The kernel names a
 * loop device's backing file by its current path, so the device follows the image into
 * `volumes/`. The proof above still holds for a bound spare: a mount through its device counts
 * in the superblock, and every write through it reaches the image (and its mtime) at the latest
 * when its last opener closes it (the kernel flushes a block device then); a claim opens the device
 * exclusively (refused while mounted anywhere on this kernel) and flushes it before its check, so
 * writes of an opener still holding it count too. Devices a spare no longer needs (its image
 * destroyed or removed, a second device of one spare, a removed `.making-` file's) are detached
 * by the destroy or by tidySpares (spareDevicesToDetach); a claim cut off after the move leaves
 * an orphan image with a device, which repair() detaches like any device of a recordless image.
 * The one kernel is what makes a device shareable: on a pool spanning kernels, a spare whose
 * device this kernel does not see is attached by the claim itself (as before).
 *
 * Devices do not outlive the kernel's loop bindings: `./dev down` lets the spares' devices go,
 * and a reboot or an operator's `losetup -D` does too. The agent binds a device again to every
 * spare that has none (bindSpares: at its start, after the tidy, and before each refill), under
 * the pool lock so that no claim moves the image between the look and the bind; binding writes
 * nothing into the image, and the claim's proof above is unchanged.
 */
/** mtime (seconds since the epoch) of a spare never written since it was made: 2001-09-09T01:46:40Z. */
export const SPARE_MTIME = 1_000_000_000;

const ID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const SPARE_NAME = new RegExp(`^(${ID})\\.img$`);
const MAKING_NAME = new RegExp(`^\\.making-([0-9a-f]{8})-(${ID})\\.img$`);

/** A ready spare, as listed. */
export interface SpareVolume {
  readonly id: string;
  /** Bytes (the image's size). */
  readonly size: number;
}

/** What the loopback driver offers for spares; the agent's spare pool is written against this only. */
export interface SpareCapable {
  /** The ready spares (complete, not claimed), oldest first. */
  listSpares(): Promise<SpareVolume[]>;
  /** Makes one spare of `size` bytes (rounded up to the allocation unit); answers it. */
  makeSpare(size: number): Promise<SpareVolume>;
  /**
   * Under the pool lock: the first spare of exactly the rounded size that proves never written
   * becomes the dataset's volume (moved into the pool, its record written), unattached, or with
   * `attach` attached to this instance on the spare's own loop device (one bound at the make, else
   * a new one); any spare failing the proof on the way is destroyed. undefined when none is there.
   */
  claimSpare(
    datasetId: string,
    size: number,
    options?: { profile?: string; onlyVolume?: boolean; attach?: boolean },
  ): Promise<ClaimedSpare | undefined>;
  destroySpare(id: string): Promise<void>;
  /** After a crash: removes what this instance's interrupted makes left (and others' once old). */
  tidySpares(): Promise<string[]>;
  /**
   * Binds a loop device to each ready spare that has none on this kernel (they were let go: `./dev down`,
   * a reboot, `losetup -D`), so that claims hand one out again; answers the ids bound. Absent where spares
   * have no device of their own.
   */
  bindSpares?(): Promise<string[]>;
}

/** A claimed spare: the dataset's volume, with its device when attached here by the claim (options.attach). */
export interface ClaimedSpare {
  readonly blockdeviceId: string;
  readonly size: number;
  readonly attachedTo: string | null;
  readonly datasetId: string;
  readonly profile?: string;
  /** The loop device, when the claim attached the volume to this instance. */
  readonly devicePath?: string;
  /**
   * The file system the claim's never-written check read from the spare's superblock (ext4 spanning the volume): its
   * first mount needs no read of its own (issue 23: that mount is on a new volume's critical path).
   */
  readonly filesystem?: { readonly fstype: 'ext4'; readonly size: number };
}

export function hasSpares(driver: object): driver is SpareCapable {
  const d = driver as Partial<SpareCapable>;
  return (
    typeof d.listSpares === 'function' &&
    typeof d.makeSpare === 'function' &&
    typeof d.claimSpare === 'function' &&
    typeof d.tidySpares === 'function'
  );
}

export function spareImageName(id: string): string {
  return `${id}.img`;
}

export function makingName(tag: string, id: string): string {
  return `.making-${tag}-${id}.img`;
}

/** The ids of complete spares among a directory's names. */
export function spareIds(names: readonly string[]): string[] {
  return names.flatMap((n) => SPARE_NAME.exec(n)?.[1] ?? []);
}

/** A file of the spares directory left by an interrupted make. */
export interface MakingFile {
  readonly name: string;
  readonly tag: string;
}

export function makingFiles(names: readonly string[]): MakingFile[] {
  return names.flatMap((name) => {
    const m = MAKING_NAME.exec(name);
    return m ? [{ name, tag: m[1] }] : [];
  });
}

/**
 * Which `.making-` files a tidy removes: every one of this instance (its makes all ended with the
 * process that ran them: tidy runs at start), and another instance's once older than maxAgeMs.
 */
export function makingFilesToRemove(
  files: readonly (MakingFile & { readonly ageMs: number })[],
  ownTag: string,
  maxAgeMs: number,
): string[] {
  return files.filter((f) => f.tag === ownTag || f.ageMs >= maxAgeMs).map((f) => f.name);
}

/** The superblock fields the never-written proof reads (ext4, at byte 1024 of the image). */
export interface Ext4Superblock {
  readonly magic: number;
  /** s_mnt_count: mounts since the last fsck (mkfs: 0). */
  readonly mountCount: number;
  /** s_mtime: last mount time (mkfs: 0). */
  readonly lastMountTime: number;
  /** Blocks x block size. */
  readonly bytes: number;
}

/** Reads an ext4 superblock (the 1024 bytes at offset 1024 of the image); null when it is too short. */
export function readExt4Superblock(sb: Buffer): Ext4Superblock | null {
  if (sb.length < 0x158) return null;
  const blockSize = 1024 * 2 ** sb.readUInt32LE(0x18);
  const hi = sb.readUInt32LE(0x60) & 0x80 ? sb.readUInt32LE(0x150) : 0; // INCOMPAT_64BIT
  return {
    magic: sb.readUInt16LE(0x38),
    mountCount: sb.readUInt16LE(0x34),
    lastMountTime: sb.readUInt32LE(0x2c),
    bytes: (hi * 2 ** 32 + sb.readUInt32LE(0x04)) * blockSize,
  };
}

/** ok: never written, and `bytes` the ext4 file system spans (the image's size). */
export type SpareVerdict =
  { readonly ok: true; readonly bytes: number } | { readonly ok: false; readonly reason: string };

/**
 * Whether a spare is provably never written since its make: an ext4 superblock never mounted,
 * spanning the whole image, and the image's mtime still the one its make set.
 */
export function spareVerdict(
  sb: Ext4Superblock | null,
  image: { readonly size: number; readonly mtimeSec: number },
): SpareVerdict {
  if (sb === null || sb.magic !== 0xef53) return { ok: false, reason: 'no ext4 superblock' };
  if (sb.mountCount !== 0) return { ok: false, reason: `mounted ${sb.mountCount} time(s)` };
  if (sb.lastMountTime !== 0) return { ok: false, reason: `last mounted at ${sb.lastMountTime}` };
  if (sb.bytes !== image.size) return { ok: false, reason: `file system spans ${sb.bytes} of ${image.size} bytes` };
  if (image.mtimeSec !== SPARE_MTIME)
    return { ok: false, reason: `image written since its make (mtime ${image.mtimeSec})` };
  return { ok: true, bytes: sb.bytes };
}

/** A bound loop device, as losetup.ts's LoopBinding. */
export interface SpareBinding {
  readonly device: string;
  readonly backingFile: string;
  readonly deleted: boolean;
}

function deviceNumber(device: string): number {
  return Number(/(\d+)$/.exec(device)?.[1] ?? Number.MAX_SAFE_INTEGER);
}

/** The loop devices serving spare `id`'s image (`<dir>/<id>.img` for one of the spares directory's paths), lowest first. */
export function devicesOfSpare(bindings: readonly SpareBinding[], dirs: readonly string[], id: string): string[] {
  return bindings
    .filter((b) => !b.deleted && dirs.some((d) => b.backingFile === `${d}/${spareImageName(id)}`))
    .map((b) => b.device)
    .sort((x, y) => deviceNumber(x) - deviceNumber(y));
}

/** The spares among `ids` with no loop device serving their image (sparesWithoutDevice: each needs one bound). */
export function sparesWithoutDevice(
  bindings: readonly SpareBinding[],
  dirs: readonly string[],
  ids: readonly string[],
): string[] {
  return ids.filter((id) => devicesOfSpare(bindings, dirs, id).length === 0);
}

/**
 * The spares directory's loop devices no spare needs: one whose image was removed or replaced
 * (" (deleted)"), every device of a spare but its lowest, and those of the `.making-` files a
 * tidy removes (`removing`). The device of another instance's make still running (a `.making-`
 * file kept) is left, and so is everything outside the spares directory.
 */
export function spareDevicesToDetach(
  bindings: readonly SpareBinding[],
  dirs: readonly string[],
  removing: readonly string[],
): string[] {
  const detach: string[] = [];
  const kept = new Map<string, string>();
  const ordered = [...bindings].sort((x, y) => deviceNumber(x.device) - deviceNumber(y.device));
  for (const b of ordered) {
    const slash = b.backingFile.lastIndexOf('/');
    if (!dirs.includes(b.backingFile.slice(0, slash))) continue;
    const name = b.backingFile.slice(slash + 1);
    if (b.deleted || removing.includes(name)) {
      detach.push(b.device);
      continue;
    }
    if (SPARE_NAME.test(name)) {
      if (kept.has(name)) detach.push(b.device);
      else kept.set(name, b.device);
    }
  }
  return detach;
}
