import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { acquireLease, createDataset, emptyConfiguration, registerNode } from './configuration';
import { CONFIGURATION_FILE, decodeConfiguration, encodeConfiguration, FileConfigurationStore, migrate } from './ConfigurationStore';
import { ApiError } from './errors';

const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const D1 = '11111111-1111-4111-8111-111111111111';

function sample() {
  let c = registerNode(emptyConfiguration, { uuid: A, host: '10.0.0.1' });
  c = createDataset(c, { primary: A, dataset_id: D1, maximum_size: 67108864, metadata: { name: 'db' } }).config;
  return acquireLease(c, { dataset_id: D1, node_uuid: A, expires: null }, 0).config;
}

describe('configuration encoding', () => {
  it('round-trips', () => {
    const c = sample();
    const text = encodeConfiguration(c);
    const back = decodeConfiguration(JSON.parse(text));
    expect(back.version).toBe(c.version);
    expect([...back.datasets.values()]).toEqual([...c.datasets.values()]);
    expect([...back.leases.values()]).toEqual([...c.leases.values()]);
    expect([...back.nodes.values()]).toEqual([...c.nodes.values()]);
    expect(JSON.parse(text).format_version).toBe(1);
  });
  it('rejects corrupt and too-new documents with stable codes', () => {
    expect(() => decodeConfiguration({ format_version: 1 })).toThrow(ApiError);
    try {
      decodeConfiguration({ format_version: 99, version: 1 });
    } catch (err) {
      expect((err as ApiError).code).toBe('STORE_FORMAT_TOO_NEW');
    }
  });
  it('runs migrations step by step', () => {
    const steps = {
      0: (d: Record<string, unknown>) => ({ ...d, format_version: 1, renamed: d['old'] }),
    };
    expect(migrate({ format_version: 0, old: 5 }, steps)).toEqual({ format_version: 1, old: 5, renamed: 5 });
    expect(() => migrate({ format_version: 0 }, {})).toThrow(ApiError);
  });
});

describe('FileConfigurationStore', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'flocker-store-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('loads empty when there is no file, then persists commits atomically', async () => {
    const store = new FileConfigurationStore(path.join(dir, 'sub'));
    expect((await store.load()).version).toBe(0);
    const c = sample();
    await store.commit(c);
    expect(existsSync(path.join(dir, 'sub', `${CONFIGURATION_FILE}.tmp`))).toBe(false);
    const reloaded = await new FileConfigurationStore(path.join(dir, 'sub')).load();
    expect(reloaded.version).toBe(c.version);
    expect(reloaded.datasets.get(D1)?.metadata).toEqual({ name: 'db' });
  });

  it('refuses to start on a corrupt file rather than losing data', async () => {
    writeFileSync(path.join(dir, CONFIGURATION_FILE), '{"format_version":1,');
    await expect(new FileConfigurationStore(dir).load()).rejects.toMatchObject({ code: 'STORE_CORRUPT' });
    expect(readFileSync(path.join(dir, CONFIGURATION_FILE), 'utf8')).toBe('{"format_version":1,');
  });
});
