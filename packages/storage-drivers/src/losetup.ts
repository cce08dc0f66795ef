import { runChecked, type ExecFn } from './exec';

/** Loop device names in `losetup -j <file>` output, e.g. "/dev/loop0: [64769]:1234 (/pool/x.img)". */
export function parseLosetupAssociations(stdout: string): string[] {
  const devices: string[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^(\/dev\/loop\d+):/.exec(line.trim());
    if (m) devices.push(m[1]);
  }
  return devices;
}

/**
 * The loop devices currently backed by this file. Asks the kernel every time
 * (losetup matches by device and inode), because /dev/loopN names change with
 * every attach and any remembered name may now be someone else's device.
 */
export async function findLoopDevices(exec: ExecFn, file: string): Promise<string[]> {
  return parseLosetupAssociations(await runChecked(exec, 'losetup', ['-j', file], `listing loop devices of ${file}`));
}

export async function attachLoop(exec: ExecFn, file: string, blockdeviceId?: string): Promise<string> {
  const out = await runChecked(
    exec,
    'losetup',
    ['--find', '--show', file],
    `attaching ${file} to a loop device`,
    'BACKEND_ERROR',
    blockdeviceId,
  );
  const device = out.trim();
  if (!/^\/dev\/loop\d+$/.test(device)) {
    throw new Error(`losetup --find --show printed ${JSON.stringify(out)}, not a loop device`);
  }
  // A read-only flag set with BLKROSET (blockdev --setro) outlives the detach and
  // would be inherited by whoever gets /dev/loopN next; clear it.
  await runChecked(exec, 'blockdev', ['--setrw', device], `making ${device} writable`, 'BACKEND_ERROR', blockdeviceId);
  return device;
}

export async function detachLoop(exec: ExecFn, device: string, blockdeviceId?: string): Promise<void> {
  await runChecked(exec, 'losetup', ['-d', device], `detaching ${device}`, 'BACKEND_ERROR', blockdeviceId);
}

/** Makes the kernel re-read the backing file's size after it grew. */
export async function refreshLoopCapacity(exec: ExecFn, device: string, blockdeviceId?: string): Promise<void> {
  await runChecked(exec, 'losetup', ['-c', device], `refreshing the size of ${device}`, 'BACKEND_ERROR', blockdeviceId);
}
