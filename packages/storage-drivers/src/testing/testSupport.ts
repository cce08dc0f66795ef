/** Test helpers: temp pools and their thorough cleanup (loop devices are kernel-global). */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { listMounts } from '../blockdev';
import { execFileExec } from '../exec';

export async function makeTempRoot(prefix: string): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

/** Loop devices whose backing file lies under root, as the kernel lists them. */
export async function loopsUnder(root: string): Promise<{ device: string; backingFile: string }[]> {
  const { stdout } = await execFileExec('losetup', ['--list', '--noheadings', '--raw', '--output', 'NAME,BACK-FILE']);
  const found: { device: string; backingFile: string }[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^(\/dev\/loop\d+) (.*)$/.exec(line.trim());
    if (m && m[2].replace(/\\x20/g, ' ').startsWith(root + '/')) found.push({ device: m[1], backingFile: m[2] });
  }
  return found;
}

/** Unmounts everything under root or from its loop devices, detaches its loop devices, removes it. */
export async function destroyTempRoot(root: string): Promise<void> {
  const loops = await loopsUnder(root);
  const devices = new Set(loops.map((l) => l.device));
  const mounts = (await listMounts()).filter((m) => m.mountPoint.startsWith(root + '/') || devices.has(m.device));
  for (const m of mounts.reverse()) await execFileExec('umount', ['-l', m.mountPoint]);
  for (const l of loops) await execFileExec('losetup', ['-d', l.device]);
  // Fenced images are immutable (chattr +i): clear the flag so they can be removed.
  await execFileExec('chattr', ['-R', '-f', '-i', root]);
  await fs.rm(root, { recursive: true, force: true });
}
