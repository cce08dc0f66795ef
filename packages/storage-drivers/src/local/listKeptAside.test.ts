/**
 * Session 16 (review U2 finding "HIDDEN DATA"): a copy kept aside (keepAside: writes the primary's
 * copy lacks) was only in a log line. listKeptAside names each one and where it is, so the agent
 * can report it and the user learn of it. btrfs on a real loop-file pool; ZFS by its commands.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecFn } from '../exec';
import { BtrfsEngine } from './btrfs';
import { makeBtrfsLoopPool } from './testSupport';
import { ZfsEngine } from './zfs';

const MiB = 1024 * 1024;
jest.setTimeout(60_000);

describe('listKeptAside on a real btrfs pool', () => {
  let dir = '';
  let pool: { pool: string; destroy(): void } | undefined;
  let engine: BtrfsEngine;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flocker-kept-aside-list-'));
    pool = makeBtrfsLoopPool(dir, 'p', 256 * MiB);
    engine = new BtrfsEngine({ pool: pool.pool });
    await engine.prepare();
  });
  afterAll(() => {
    pool?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('none before a keepAside; then each kept copy with its path, until the dataset is deleted', async () => {
    expect(await engine.listKeptAside()).toEqual([]);
    const id = randomUUID();
    const other = randomUUID();
    const mnt = join(dir, 'mnt', id);
    await engine.createDataset(id, 64 * MiB);
    await engine.createDataset(other, 64 * MiB);
    await engine.mount(id, mnt);
    writeFileSync(join(mnt, 'later'), 'written after the replica');
    await engine.unmount(mnt);
    const aside = await engine.keepAside(id);
    await engine.retire(id);
    expect(await engine.listKeptAside()).toEqual([{ datasetId: id, path: aside }]);
    expect(aside.startsWith(`${pool?.pool}/flocker/diverged/${id}-`)).toBe(true);
    // A let-go keeping asides (a stale replica dropped) leaves it listed; the dataset's delete removes it.
    await engine.destroyDataset(id, { keepAsides: true });
    expect(await engine.listKeptAside()).toEqual([{ datasetId: id, path: aside }]);
    await engine.destroyDataset(id);
    expect(await engine.listKeptAside()).toEqual([]);
    await engine.destroyDataset(other);
  });
});

describe('listKeptAside on ZFS (commands)', () => {
  const ID = '0b0e6d4c-6c52-4a43-9d8a-4e3f1c1d2a10';
  const ID2 = '0b0e6d4c-6c52-4a43-9d8a-4e3f1c1d2a11';
  const LIST = 'zfs list -H -t filesystem -d 1 -o name tank/data/flocker-diverged';

  function engineWith(answer: (argv: string) => { stdout?: string; stderr?: string; exitCode?: number }): {
    engine: ZfsEngine;
    calls: string[];
  } {
    const calls: string[] = [];
    const exec: ExecFn = async (file, args) => {
      const argv = [file, ...args].join(' ');
      calls.push(argv);
      const r = answer(argv);
      return { stdout: r.stdout ?? '', stderr: r.stderr ?? '', exitCode: r.exitCode ?? 0 };
    };
    return { engine: new ZfsEngine({ pool: 'tank/data', exec }), calls };
  }

  it('each file system under <pool>/flocker-diverged, by dataset, from one listing', async () => {
    const { engine, calls } = engineWith((argv) =>
      argv === LIST
        ? {
            stdout:
              'tank/data/flocker-diverged\n' +
              `tank/data/flocker-diverged/${ID2}-42\n` +
              `tank/data/flocker-diverged/${ID}-123\n` +
              'tank/data/flocker-diverged/not-a-dataset\n',
          }
        : {},
    );
    expect(await engine.listKeptAside()).toEqual([
      { datasetId: ID, path: `tank/data/flocker-diverged/${ID}-123` },
      { datasetId: ID2, path: `tank/data/flocker-diverged/${ID2}-42` },
    ]);
    expect(calls).toEqual([LIST]);
  });

  it('the folder found absent: none, and not listed again (the agent asks every turn)', async () => {
    const { engine, calls } = engineWith((argv) =>
      argv === LIST ? { exitCode: 1, stderr: "cannot open 'tank/data/flocker-diverged': dataset does not exist" } : {},
    );
    expect(await engine.listKeptAside()).toEqual([]);
    expect(await engine.listKeptAside()).toEqual([]);
    expect(await engine.listRetained()).toEqual([]);
    expect(calls.filter((c) => c === LIST)).toHaveLength(1);
  });

  it('a listing that fails otherwise is an error (not "none kept")', async () => {
    const { engine } = engineWith((argv) => (argv === LIST ? { exitCode: 1, stderr: 'I/O error' } : {}));
    await expect(engine.listKeptAside()).rejects.toThrow(/I\/O error/);
  });
});
