/**
 * flocker-syshelper (helpers/flocker-syshelper.pl): the one helper program of this
 * package. Node has no flock(2), ioctl(2) or mount(2); spawning flock(1),
 * losetup(8) or mount(8) for each call costs a fork+exec (5-9 ms each on a loaded
 * 2-core host, several per create→mounted), so a long-lived perl process makes
 * the calls and answers one line per request. Its protocol is documented at the
 * top of the script. Every user falls back to the standard tool when the helper
 * cannot run here: no perl, the file missing, or (mount(2), the flag ioctls) an
 * architecture it has no numbers for, which it says in an "unsupported …" answer.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { HelperUnavailable, LineHelper } from './exec';

/** Resolved from the package root: dist/ and src/ are both one level below it. */
export const SYSHELPER_PATH = path.resolve(__dirname, '..', 'helpers', 'flocker-syshelper.pl');

export interface SysHelperOptions {
  /** Another copy of the script (tests: a missing one). */
  readonly script?: string;
  /** Passed as --arch: the architecture table as another perl would see it (tests). */
  readonly arch?: string;
}

/** An answer of the helper refusing an architecture-dependent request here. */
export function isUnsupported(answer: string): boolean {
  return answer.startsWith('unsupported ');
}

/**
 * One helper process (started on first request, again after it dies). Requests
 * throw HelperUnavailable when perl or the script is missing: callers then use
 * the standard tool.
 */
export class SysHelper {
  private readonly script: string;
  private readonly helper: LineHelper;
  private scriptFound = false;

  constructor(what: string, options: SysHelperOptions & { readonly lockFile?: string } = {}) {
    this.script = options.script ?? SYSHELPER_PATH;
    const args = [
      ...(options.lockFile !== undefined ? ['--lock', options.lockFile] : []),
      ...(options.arch !== undefined ? ['--arch', options.arch] : []),
    ];
    this.helper = new LineHelper(what, ['perl', this.script, ...args]);
  }

  /** See LineHelper.request for `onSent`. */
  request(line: string, onSent?: () => void): Promise<string> {
    if (!this.scriptFound) {
      // perl would start and exit 2 ("Can't open perl script"), which reads as a crash, not as "not installed".
      if (!existsSync(this.script)) return Promise.reject(new HelperUnavailable(`${this.script} is missing`));
      this.scriptFound = true;
    }
    return this.helper.request(line, onSent);
  }

  /** Ends the process, once it has answered what was sent (see LineHelper.close); a later request starts another. */
  close(): Promise<void> {
    return this.helper.close();
  }
}
