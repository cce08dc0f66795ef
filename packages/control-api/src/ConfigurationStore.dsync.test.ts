/**
 * A commit of the file store is one durable write (issue 23): the log is opened O_DSYNC, so the record is on stable
 * storage when its write returns (fdatasync's guarantee) and no separate datasync follows it — one trip to the thread
 * pool on every write's answer where two were taken. A sync failure still fails the commit and leaves no record.
 */
import { constants as fsConstants, mkdtempSync, rmSync } from 'node:fs';
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { FakeFullDisk } from '@flocker/api/testing';
import { type Configuration, createDataset, registerNode } from './configuration';
import { FileConfigurationStore, LOG_FILE } from './ConfigurationStore';

const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';

function create(c: Configuration, i: number): Configuration {
  return createDataset(c, {
    primary: A,
    dataset_id: `${String(i).padStart(8, '0')}-1111-4111-8111-111111111111`,
    metadata: { name: `v${i}` },
  }).config;
}

describe('FileConfigurationStore: one durable write per commit', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'flocker-dsync-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('opens the log O_DSYNC and commits with writes alone (no datasync), and what it acknowledged loads back', async () => {
    const logFile = path.join(dir, LOG_FILE);
    const logOpens: Array<string | number> = [];
    const calls: string[] = [];
    const open = async (file: string, flags: string | number, mode?: number): Promise<FileHandle> => {
      const handle = await fs.open(file, flags, mode);
      if (file !== logFile) return handle;
      logOpens.push(flags);
      return new Proxy(handle, {
        get(target, prop, receiver) {
          const value = Reflect.get(target, prop, receiver) as unknown;
          if (typeof value !== 'function') return value;
          if (prop === 'write' || prop === 'datasync' || prop === 'sync') calls.push(prop);
          return (value as (...args: unknown[]) => unknown).bind(target);
        },
      });
    };
    const store = new FileConfigurationStore(dir, { openFile: open, compactMinBytes: 1 << 30 });
    let c = registerNode(await store.load(), { uuid: A, host: '10.0.0.1' });
    await store.commit(c);
    for (let i = 0; i < 5; i++) {
      c = create(c, i);
      await store.commit(c);
    }
    await store.close();
    expect(logOpens).toHaveLength(1);
    const flags = logOpens[0];
    expect(typeof flags).toBe('number');
    expect((flags as number) & fsConstants.O_DSYNC).toBe(fsConstants.O_DSYNC);
    expect((flags as number) & (fsConstants.O_WRONLY | fsConstants.O_RDWR)).toBe(fsConstants.O_RDWR);
    expect((flags as number) & fsConstants.O_APPEND).toBe(0);
    expect(calls).toEqual(Array.from({ length: 6 }, () => 'write'));
    expect((await new FileConfigurationStore(dir).load()).version).toBe(c.version);
  });

  it('a write whose sync fails (EIO) is not acknowledged, leaves no record, and commits go on after', async () => {
    const disk = new FakeFullDisk();
    const store = new FileConfigurationStore(dir, { openFile: disk.open, compactMinBytes: 1 << 30 });
    let acked = registerNode(await store.load(), { uuid: A, host: '10.0.0.1' });
    await store.commit(acked);
    acked = create(acked, 0);
    await store.commit(acked);
    disk.failNextSync = true;
    await expect(store.commit(create(acked, 1))).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    expect((await new FileConfigurationStore(dir).load()).version).toBe(acked.version);
    acked = create(acked, 2);
    await store.commit(acked);
    await store.close();
    const loaded = await new FileConfigurationStore(dir).load();
    expect(loaded.version).toBe(acked.version);
    expect([...loaded.datasets.keys()]).toEqual([...acked.datasets.keys()]);
  });
});
