/**
 * A tiny image with no registry: a busybox-static rootfs, `docker import`ed
 * into each host's dockerd as `tiny`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ClusterError, run } from './run';

export const TINY_IMAGE = 'tiny';
const BUSYBOX_CANDIDATES = ['/bin/busybox', '/usr/bin/busybox'];

export async function buildTinyImage(tarPath: string): Promise<string> {
  if (fs.existsSync(tarPath)) return tarPath;
  const busybox = BUSYBOX_CANDIDATES.find((p) => fs.existsSync(p));
  if (busybox === undefined) {
    throw new ClusterError(
      'BUSYBOX_MISSING',
      'no static busybox found; install it with: apt-get install -y busybox-static',
    );
  }
  const rootfs = path.join(path.dirname(tarPath), 'rootfs');
  fs.rmSync(rootfs, { recursive: true, force: true });
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'data', 'root']) {
    fs.mkdirSync(path.join(rootfs, d), { recursive: true });
  }
  fs.copyFileSync(busybox, path.join(rootfs, 'bin', 'busybox'));
  fs.chmodSync(path.join(rootfs, 'bin', 'busybox'), 0o755);
  const { stdout: applets } = await run([busybox, '--list']);
  for (const applet of applets.split('\n').filter((a) => /^[\w.[-]+$/.test(a) && a !== 'busybox')) {
    const link = path.join(rootfs, 'bin', applet);
    if (!fs.existsSync(link)) fs.symlinkSync('busybox', link);
  }
  fs.writeFileSync(path.join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  fs.writeFileSync(path.join(rootfs, 'etc', 'group'), 'root:x:0:\n');
  await run(['tar', '-C', rootfs, '--numeric-owner', '-cf', tarPath + '.tmp', '.']);
  fs.renameSync(tarPath + '.tmp', tarPath);
  fs.rmSync(rootfs, { recursive: true, force: true });
  return tarPath;
}
