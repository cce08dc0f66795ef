/**
 * mount(2) and umount2(2) through flocker-syshelper (see syshelper.ts): spawning
 * mount/umount costs a fork+exec each, which is most of a mount's time on the
 * critical path of every create and move. The helper is a child of the caller,
 * so it mounts in the caller's mount namespace. Where the helper cannot run, or
 * has no system call numbers for this architecture, callers fall back to mount(8).
 */
import { HelperUnavailable } from './exec';
import { isUnsupported, SysHelper, type SysHelperOptions } from './syshelper';

export type MountAnswer = { ok: true } | { ok: false; errno: number; message: string } | null;

export class MountSyscalls {
  private readonly helper: SysHelper;
  private unavailable = process.platform !== 'linux';

  constructor(options: SysHelperOptions = {}) {
    this.helper = new SysHelper('mount helper', options);
  }

  /** null: not available here, use mount(8). */
  mount(device: string, mountPoint: string, fstype: string): Promise<MountAnswer> {
    return this.ask(`mount ${device}\t${mountPoint}\t${fstype}`, [device, mountPoint, fstype]);
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
