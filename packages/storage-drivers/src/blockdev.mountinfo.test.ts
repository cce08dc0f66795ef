/**
 * listMounts reads /proc/self/mountinfo synchronously since a9f33e2 (session 13 review): the same entries as the
 * asynchronous read, for mount points the kernel escapes (space, tab, newline, backslash) or that are not ASCII, and
 * for a table longer than one read (procfs files report size 0, so both reads go on until end of file). Run in a
 * mount namespace of its own (unshare -m): its mounts go with it.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { z } from 'zod';
import { destroyTempRoot, makeTempRoot } from './testing/testSupport';

jest.setTimeout(120_000);

const ODD = ['a b', 'tab\there', 'new\nline', 'back\\slash', 'ünï ☃', 'oct\\040al'];

// In the namespace: mount a tmpfs on each odd name and on `many` more, then compare both reads.
const CHILD = `
const [dist, root, many] = process.argv.slice(1);
const { listMounts, parseMountInfo, mount } = require(dist + '/blockdev.js');
const fs = require('node:fs');
const path = require('node:path');
(async () => {
  const names = [...JSON.parse(process.env.ODD), ...Array.from({ length: Number(many) }, (_, i) => 'many ' + i)];
  for (const name of names) {
    const at = path.join(root, name);
    fs.mkdirSync(at, { recursive: true });
    await mount('tmpfs', at, { fstype: 'tmpfs' });
  }
  const sync = await listMounts();
  const text = await fs.promises.readFile('/proc/self/mountinfo', 'utf8');
  const byAsync = parseMountInfo(text);
  // Exit once the pipe took it all (the mount helper would keep the process alive).
  process.stdout.write(JSON.stringify({ bytes: Buffer.byteLength(text), sync, byAsync }), () => process.exit(0));
})().catch((e) => { console.error(e); process.exit(1); });
`;

const Entry = z.object({
  device: z.string(),
  mountPoint: z.string(),
  fstype: z.string(),
  majorMinor: z.string(),
  options: z.string(),
});
const Answer = z.object({ bytes: z.number(), sync: z.array(Entry), byAsync: z.array(Entry) });

describe('listMounts (synchronous read of /proc/self/mountinfo)', () => {
  it('gives what the asynchronous read gives: escaped and non-ASCII mount points, and a table past 64 KiB', async () => {
    const root = await makeTempRoot('flocker-mountinfo-test-');
    try {
      const { stdout } = await promisify(execFile)(
        'unshare',
        ['-m', '--propagation', 'private', process.execPath, '-e', CHILD, __dirname, root, '1200'],
        { env: { ...process.env, ODD: JSON.stringify(ODD) }, maxBuffer: 64 * 1024 * 1024 },
      );
      const answer = Answer.parse(JSON.parse(stdout));
      expect(answer.bytes).toBeGreaterThan(64 * 1024);
      expect(answer.sync).toEqual(answer.byAsync);
      const under = answer.sync.filter((m) => m.mountPoint.startsWith(root + '/'));
      expect(under).toHaveLength(ODD.length + 1200);
      for (const name of ODD)
        expect(under.find((m) => m.mountPoint === path.join(root, name))).toMatchObject({
          fstype: 'tmpfs',
          device: 'tmpfs',
        });
      // The namespace took its mounts with it.
      expect((await fs.readFile('/proc/self/mountinfo', 'utf8')).includes(root)).toBe(false);
    } finally {
      await destroyTempRoot(root);
    }
  });
});
