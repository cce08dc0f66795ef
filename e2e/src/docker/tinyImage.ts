/** A registry-free test image: a busybox-static rootfs, `docker import`ed. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { exec } from './exec';

const BUSYBOX = ['/bin/busybox', '/usr/bin/busybox'];

async function findStaticBusybox(): Promise<string> {
  const found = BUSYBOX.find((p) => fs.existsSync(p));
  if (found) return found;
  await exec(['apt-get', 'install', '-y', '-qq', 'busybox-static'], { timeoutMs: 180_000 });
  const installed = BUSYBOX.find((p) => fs.existsSync(p));
  if (!installed) throw new Error('busybox-static is not installed and could not be installed');
  return installed;
}

/** Build `<dir>/tiny.tar` (once) and return its path. */
export async function buildTinyRootfsTar(dir: string): Promise<string> {
  const tar = path.join(dir, 'tiny.tar');
  if (fs.existsSync(tar)) return tar;
  const busybox = await findStaticBusybox();
  const rootfs = path.join(dir, 'tiny-rootfs');
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'data', 'root'])
    fs.mkdirSync(path.join(rootfs, d), { recursive: true });
  fs.copyFileSync(busybox, path.join(rootfs, 'bin', 'busybox'));
  fs.chmodSync(path.join(rootfs, 'bin', 'busybox'), 0o755);
  const applets = (await exec([busybox, '--list'])).stdout
    .split('\n')
    .filter((a) => /^[\w.[-]+$/.test(a) && a !== 'busybox');
  for (const a of applets) {
    const link = path.join(rootfs, 'bin', a);
    if (!fs.existsSync(link)) fs.symlinkSync('busybox', link);
  }
  fs.writeFileSync(path.join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  fs.writeFileSync(path.join(rootfs, 'etc', 'group'), 'root:x:0:\n');
  await exec(['tar', '-C', rootfs, '--numeric-owner', '-cf', `${tar}.tmp`, '.']);
  fs.renameSync(`${tar}.tmp`, tar);
  fs.rmSync(rootfs, { recursive: true, force: true });
  return tar;
}
