/**
 * mount(2) and umount2(2) through one long-lived perl process (the same plumbing
 * as the loop ioctls): spawning mount/umount costs a fork+exec each, which is most
 * of a mount's time on the critical path of every create and move. The helper is a
 * child of the caller, so it mounts in the caller's mount namespace. Where perl or
 * the x86-64 syscall numbers are unavailable, callers fall back to mount(8).
 */
import { HelperUnavailable, LineHelper } from './exec';

const SYS_MOUNT = 165;
const SYS_UMOUNT2 = 166;

// One request a line: "mount DEV<TAB>DIR<TAB>FSTYPE" or "umount DIR". The answer is
// "ok" or "err <errno> <text>".
const MOUNT_HELPER_SCRIPT = `
use strict;
$| = 1;
while (my $line = <STDIN>) {
  chomp $line;
  my ($cmd, $rest) = split / /, $line, 2;
  my $r;
  if ($cmd eq 'mount') {
    my ($dev, $dir, $fs) = split /\\t/, $rest;
    $r = syscall(${SYS_MOUNT}, $dev, $dir, $fs, 0, 0);
  } elsif ($cmd eq 'umount') {
    $r = syscall(${SYS_UMOUNT2}, $rest, 0);
  } else {
    print "err 22 unknown command\\n"; next;
  }
  if ($r == 0) { print "ok\\n" } else { printf "err %d %s\\n", $! + 0, "$!" }
}
`;

export type MountAnswer = { ok: true } | { ok: false; errno: number; message: string } | null;

export class MountSyscalls {
  private readonly helper = new LineHelper('mount helper', ['perl', '-e', MOUNT_HELPER_SCRIPT]);
  private unavailable = process.platform !== 'linux' || process.arch !== 'x64';

  /** null: not available here, use mount(8). */
  mount(device: string, mountPoint: string, fstype: string): Promise<MountAnswer> {
    return this.ask(`mount ${device}\t${mountPoint}\t${fstype}`, [device, mountPoint, fstype]);
  }

  umount(mountPoint: string): Promise<MountAnswer> {
    return this.ask(`umount ${mountPoint}`, [mountPoint]);
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
    const m = /^err (\d+) (.*)$/.exec(answer);
    return { ok: false, errno: m ? Number(m[1]) : 0, message: m?.[2] ?? answer };
  }
}

export const mountSyscalls = new MountSyscalls();
