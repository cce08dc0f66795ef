/**
 * xfs datasets on real loop devices: a clone (a copy of the image, as a snapshot makes) has its
 * source's file system UUID, which xfs refuses to mount twice on one kernel unless told not to
 * check; the agent mounts xfs so that a volume and its clones mount side by side.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { destroyTempRoot, makeTempRoot } from '@flocker/storage-drivers/testing';
import { linuxHostOps } from './HostOps';

const run = promisify(execFile);

describe('xfs volumes on the host', () => {
  let root: string;
  const devices: string[] = [];
  beforeAll(async () => {
    root = await makeTempRoot('flocker-hostops-xfs-');
  });
  afterAll(async () => {
    for (const m of [path.join(root, 'a'), path.join(root, 'b')]) await linuxHostOps.unmount(m).catch(() => undefined);
    for (const d of devices) await run('losetup', ['-d', d]).catch(() => undefined);
    await destroyTempRoot(root);
  });

  async function loop(image: string): Promise<string> {
    const dev = (await run('losetup', ['--find', '--show', image])).stdout.trim();
    devices.push(dev);
    return dev;
  }

  it('formats xfs, and mounts a volume and a clone of it (same file system UUID) at once', async () => {
    const image = path.join(root, 'src.img');
    await fs.writeFile(image, '');
    await fs.truncate(image, 300 * 1024 * 1024);
    const src = await loop(image);
    await linuxHostOps.makeFilesystem(src, 'xfs');
    expect(await linuxHostOps.hasFilesystem(src)).toBe(true);
    await linuxHostOps.mkdirp(path.join(root, 'a'));
    await linuxHostOps.mount(src, path.join(root, 'a'));
    await fs.writeFile(path.join(root, 'a', 'f'), 'from the source\n');
    await run('sync');
    await run('cp', ['--sparse=always', image, path.join(root, 'clone.img')]);
    const clone = await loop(path.join(root, 'clone.img'));
    await linuxHostOps.mkdirp(path.join(root, 'b'));
    await linuxHostOps.mount(clone, path.join(root, 'b'));
    expect(await fs.readFile(path.join(root, 'b', 'f'), 'utf8')).toBe('from the source\n');
    expect(await linuxHostOps.filesystemSize(clone)).toBe(300 * 1024 * 1024);
  });
});
