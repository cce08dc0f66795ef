/**
 * Review RL (session 14): the ZFS engine never receives into a live copy. `zfs receive -F` rolls the
 * file system back to the stream's base, so a snapshot received into the dataset's live copy
 * (mounted or not) takes every write since that snapshot with it. The mover no longer sends over
 * a target's live copy (moveOverLiveCopy.test), but a replica round has no such check, and a
 * source of an older version (a rolling upgrade) neither: the target refuses itself.
 */
import { PassThrough } from 'node:stream';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { ExecFn } from '../exec';
import type { SpawnFn, StreamProcess } from './processes';
import { ZfsEngine } from './zfs';
import { ensureZfs, makeZfsFilePool, type ZfsFilePool } from './zfsTestSupport';

const ID = '0b0e6d4c-6c52-4a43-9d8a-4e3f1c1d2a10';
const MiB = 1024 * 1024;

describe('ZFS receive over a live copy (command sequences)', () => {
  for (const [state, answer, refused] of [
    ['live (writable, legacy)', 'off\nlegacy\n', true],
    ['live (writable, mounted by zfs-fuse at a path)', 'off\n/flocker/x\n', true],
    ['received, not promoted (read-only)', 'on\nlegacy\n', false],
    ['being received without -o (mountpoint none)', 'off\nnone\n', false],
  ] as const)
    it(`${state}: ${refused ? 'refused, no byte fed to the receive' : 'received'}`, async () => {
      const calls: string[] = [];
      const exec: ExecFn = (file, args) => {
        calls.push([file, ...args].join(' '));
        const argv = args.join(' ');
        if (argv.startsWith('get -H -o value readonly,mountpoint'))
          return Promise.resolve({ exitCode: 0, stdout: answer, stderr: '' });
        if (argv.startsWith('list -H -p -t snapshot'))
          return Promise.resolve({ exitCode: 0, stdout: `tank/flocker/${ID}@move-000002\tguid2\n`, stderr: '' });
        return Promise.resolve({ exitCode: 0, stdout: '', stderr: '' });
      };
      let fed = 0;
      let killed = false;
      const spawn: SpawnFn = (file, args) => {
        calls.push(`spawn ${[file, ...args].join(' ')}`);
        const stdin = new PassThrough();
        const stdout = new PassThrough();
        stdin.on('data', (c: Buffer) => (fed += c.length));
        let fail: (e: Error) => void = () => undefined;
        const done = new Promise<void>((resolve, reject) => {
          fail = reject;
          stdin.on('end', () => {
            stdout.end();
            resolve();
          });
        });
        done.catch(() => undefined);
        const p: StreamProcess = {
          stdin,
          stdout,
          done,
          kill: () => {
            killed = true;
            stdin.destroy();
            fail(new Error('killed'));
          },
        };
        return p;
      };
      const e = new ZfsEngine({
        pool: 'tank',
        exec,
        spawn,
        features: { listExact: true, receiveOptions: true, kernelMounts: true },
      });
      const stream = new PassThrough();
      stream.end(Buffer.from('a zfs stream'));
      const receiving = e.receive(ID, 'move-000002', 'guid2', stream);
      if (refused) {
        await expect(receiving).rejects.toMatchObject({ code: 'PEER_REFUSED' });
        expect(fed).toBe(0);
        expect(killed).toBe(true);
      } else {
        await expect(receiving).resolves.toMatchObject({ name: 'move-000002', identity: 'guid2' });
        expect(fed).toBeGreaterThan(0);
      }
    });
});

const zfsReady = ensureZfs();
describe('ZFS receive over a live copy, on real pools', () => {
  if (!zfsReady.ok) {
    it('cannot run on this machine (the reason is printed)', () => {
      console.log(`ZFS real-run tests skipped: ${zfsReady.reason}`);
    });
    return;
  }
  let dir: string;
  const pools: ZfsFilePool[] = [];
  let a: ZfsEngine;
  let b: ZfsEngine;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flocker-rl-zrecv-'));
    for (const name of ['rlra', 'rlrb']) pools.push(makeZfsFilePool(dir, name, 256 * MiB));
    a = new ZfsEngine({ pool: pools[0]?.pool ?? '' });
    b = new ZfsEngine({ pool: pools[1]?.pool ?? '' });
    await a.prepare();
    await b.prepare();
  }, 60_000);
  afterAll(() => {
    for (const p of pools) p.destroy();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  for (const mounted of [true, false])
    it(`an incremental into B's live copy (${mounted ? 'mounted' : 'not mounted'}) is refused; B's writes stay`, async () => {
      const id = randomUUID();
      const pathA = join(dir, 'mnt', 'a', id);
      const pathB = join(dir, 'mnt', 'b', id);
      await a.createDataset(id, 64 * MiB);
      await a.mount(id, pathA);
      writeFileSync(join(pathA, 'data'), 'first');
      const first = await a.createSnapshot(id, 'move-000001');
      writeFileSync(join(pathA, 'data'), 'second');
      const second = await a.createSnapshot(id, 'move-000002');
      const one = a.send(id, 'move-000001', null);
      await b.receive(id, 'move-000001', first.identity, one.stream);
      await one.done;
      await b.promote(id, 'move-000001', 64 * MiB);
      await b.mount(id, pathB);
      writeFileSync(join(pathB, 'data'), 'written on B');
      if (!mounted) await b.unmount(pathB);
      const two = a.send(id, 'move-000002', 'move-000001');
      await expect(b.receive(id, 'move-000002', second.identity, two.stream)).rejects.toMatchObject({
        code: 'PEER_REFUSED',
      });
      await two.done.catch(() => undefined);
      if (!mounted) await b.mount(id, pathB);
      expect(readFileSync(join(pathB, 'data'), 'utf8')).toBe('written on B');
      expect((await b.listSnapshots(id)).map((s) => s.name)).toEqual(['move-000001']);
      await b.unmount(pathB);
      await a.unmount(pathA);
      await a.destroyDataset(id);
      await b.destroyDataset(id);
    }, 120_000);
});
