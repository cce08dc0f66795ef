/**
 * mount(2) and umount2(2) through flocker-syshelper (see syshelper.ts): spawning
 * mount/umount costs a fork+exec each, which is most of a mount's time on the
 * critical path of every create and move. The helper is a child of the caller,
 * so it mounts in the caller's mount namespace. Where the helper cannot run, or
 * has no system call numbers for this architecture, callers fall back to mount(8); so
 * do mounts with options that are no file-system data (syscallMountData).
 */
import { HelperUnavailable } from './exec';
import { isUnsupported, SysHelper, type SysHelperOptions } from './syshelper';

/**
 * Mount options that mount(2)'s data string carries as they are (ext4's and xfs's own parsers take them): mount(8)
 * passes them through unchanged. Everything else goes through mount(8): its flag words (ro, nosuid, noatime, ...)
 * become MS_* flags, not data, and its userspace words (defaults, nofail, x-*, ...) reach no kernel at all.
 */
const DATA_OPTIONS: ReadonlySet<string> = new Set(['discard', 'nodiscard', 'nouuid']);

/**
 * The data for the helper's mount(2) when every option is one it carries as is (the fast path: no fork+exec of
 * mount(8)), else null (mount(8)).
 */
export function syscallMountData(options: readonly string[]): readonly string[] | null {
  return options.every((o) => DATA_OPTIONS.has(o)) ? options : null;
}

export type MountAnswer = { ok: true } | { ok: false; errno: number; message: string } | null;

export class MountSyscalls {
  private readonly helper: SysHelper;
  private unavailable = process.platform !== 'linux';

  constructor(options: SysHelperOptions = {}) {
    this.helper = new SysHelper('mount helper', options);
  }

  /**
   * mount(2) with no flags and `data` (the file system's options, see syscallMountData) as its data. null: not
   * available here, use mount(8).
   */
  mount(device: string, mountPoint: string, fstype: string, data: readonly string[] = []): Promise<MountAnswer> {
    const joined = data.join(',');
    if (data.some((d) => d.length === 0 || d.includes(','))) return Promise.resolve(null);
    return joined.length === 0
      ? this.ask(`mount ${device}\t${mountPoint}\t${fstype}`, [device, mountPoint, fstype])
      : this.ask(`mount ${device}\t${mountPoint}\t${fstype}\t${joined}`, [device, mountPoint, fstype, joined]);
  }

  umount(mountPoint: string): Promise<MountAnswer> {
    return this.ask(`umount ${mountPoint}`, [mountPoint]);
  }

  /** FIFREEZE on the mount point (fsfreeze --freeze). */
  freeze(mountPoint: string): Promise<MountAnswer> {
    return this.ask(`freeze ${mountPoint}`, [mountPoint]);
  }

  /** FITHAW on the mount point (fsfreeze --unfreeze); errno 22 (EINVAL) when it was not frozen. */
  thaw(mountPoint: string): Promise<MountAnswer> {
    return this.ask(`thaw ${mountPoint}`, [mountPoint]);
  }

  private async ask(line: string, args: string[]): Promise<MountAnswer> {
    // The protocol is one line per request, tab-separated.
    if (this.unavailable || args.some((a) => /[\t\n]/.test(a) || a.length === 0)) return null;
    let answer: string;
    try {
      answer = await this.helper.request(line);
    } catch (e) {
      if (!(e instanceof HelperUnavailable)) throw e;
      this.unavailable = true;
      return null;
    }
    if (answer === 'ok') return { ok: true };
    if (isUnsupported(answer)) {
      this.unavailable = true;
      return null;
    }
    const m = /^err (\d+) (.*)$/.exec(answer);
    return { ok: false, errno: m ? Number(m[1]) : 0, message: m?.[2] ?? answer };
  }
}

export const mountSyscalls = new MountSyscalls();
