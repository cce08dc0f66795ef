/**
 * The immutable flag of a file (FS_IMMUTABLE_FL, `chattr +i`): with it set, a
 * loop device backed by the file fails every write (EIO in the filesystem
 * mounted on it), which is how the loopback driver fences a dead holder.
 * Needs CAP_LINUX_IMMUTABLE and a filesystem with the flag (ext4, xfs, btrfs,
 * tmpfs since Linux 6.0). Done with an ioctl in the driver's flocker-syshelper
 * (LoopIoctls), else with chattr/lsattr (one process each, ~4 ms).
 */
import { StorageError } from './BlockDeviceApi';
import { formatCommand, type ExecFn } from './exec';
import type { LoopIoctls } from './losetup';

/** Setting or reading the flag failed; `errno` says why (EPERM, EOPNOTSUPP, ENOTTY, ENOENT…). */
export class ImmutableFlagError extends StorageError {
  constructor(
    readonly errno: string,
    readonly file: string,
    detail: string,
  ) {
    super('BACKEND_ERROR', `${errno}: ${detail}`);
    this.name = 'ImmutableFlagError';
  }
}

export interface ImmutableOptions {
  readonly exec: ExecFn;
  readonly ioctls?: LoopIoctls;
}

/** Plain words for why the flag cannot be set, for error messages. */
export function immutableFailureReason(errno: string): string {
  switch (errno) {
    case 'EPERM':
      return 'not permitted (setting the immutable flag needs CAP_LINUX_IMMUTABLE, i.e. root)';
    case 'EOPNOTSUPP':
    case 'ENOTTY':
    case 'ENOSYS':
    case 'EINVAL':
      return 'the pool filesystem does not support the immutable flag (use ext4, xfs, btrfs or tmpfs on Linux 6.0+)';
    case 'ENOTENFORCED':
      return 'the pool filesystem does not enforce the flag on files opened before it was set (tmpfs), so it would not stop the old device';
    default:
      return errno;
  }
}

/** Sets (true) or clears (false) the immutable flag; idempotent. */
export async function setImmutable(file: string, on: boolean, options: ImmutableOptions): Promise<void> {
  const answer = options.ioctls === undefined ? null : await options.ioctls.immutable(file, on ? 'set' : 'clear');
  if (answer !== null) {
    if (!answer.ok) throw new ImmutableFlagError(answer.errno, file, answer.message);
    return;
  }
  const args = [on ? '+i' : '-i', file];
  await runFlagTool(options.exec, 'chattr', args, file);
}

/** Whether the file has the immutable flag. */
export async function isImmutable(file: string, options: ImmutableOptions): Promise<boolean> {
  const answer = options.ioctls === undefined ? null : await options.ioctls.immutable(file, 'get');
  if (answer !== null) {
    if (!answer.ok) throw new ImmutableFlagError(answer.errno, file, answer.message);
    return answer.immutable;
  }
  const out = await runFlagTool(options.exec, 'lsattr', ['-d', file], file);
  return parseLsattrImmutable(out);
}

/** `lsattr -d FILE` prints "----i---------e------- FILE": the flags column holds an "i" when immutable. */
export function parseLsattrImmutable(stdout: string): boolean {
  const flags = stdout.trim().split(/\s+/, 1)[0] ?? '';
  return flags.includes('i');
}

/** chattr/lsattr print strerror(3) text; map it back to the errno name. */
export function errnoFromMessage(text: string): string {
  if (/Operation not permitted/i.test(text)) return 'EPERM';
  if (/Operation not supported/i.test(text)) return 'EOPNOTSUPP';
  if (/Inappropriate ioctl for device/i.test(text)) return 'ENOTTY';
  if (/No such file or directory/i.test(text)) return 'ENOENT';
  return 'EIO';
}

async function runFlagTool(exec: ExecFn, tool: string, args: readonly string[], file: string): Promise<string> {
  const result = await exec(tool, args);
  if (result.exitCode !== 0) {
    const detail = result.stderr.trim() || result.stdout.trim() || 'no output';
    throw new ImmutableFlagError(
      errnoFromMessage(detail),
      file,
      `\`${formatCommand(tool, args)}\` exited with ${result.exitCode}: ${detail}`,
    );
  }
  return result.stdout;
}
