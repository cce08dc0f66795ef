/** used_bytes of mounted datasets in the node report (issue 21: disk usage per volume, the agent reports it). */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '@flocker/runtime/testing';
import { DatasetAgent } from './DatasetAgent';
import { TEST_NODE, testAgentOptions } from './testing/agentOptions';
import { FakeControl, FakeDriver, FakeHost } from './testing/fakes';
import { coarseUsedBytes, statfsUsedBytes, USED_BYTES_MAX_AGE_MS, UsedBytesCache } from './usedSpace';

const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const MiB = 1024 * 1024;

describe('UsedBytesCache', () => {
  it('measures a mount point at most once per max age, and forgets unmounted ones', () => {
    let now = 0;
    const measured: string[] = [];
    let bytes = 100;
    const cache = new UsedBytesCache(
      (p) => {
        measured.push(p);
        return bytes;
      },
      () => now,
      5_000,
    );
    expect(cache.usedBytes('/a')).toBe(100);
    bytes = 200;
    now = 4_999;
    expect(cache.usedBytes('/a')).toBe(100);
    expect(measured).toEqual(['/a']);
    now = 5_000;
    expect(cache.usedBytes('/a')).toBe(200);
    cache.retain(new Set());
    now = 5_001;
    expect(cache.usedBytes('/a')).toBe(200);
    expect(measured).toEqual(['/a', '/a', '/a']);
  });

  it('an unreadable mount point is undefined (and is not asked again until the max age passes)', () => {
    let calls = 0;
    const cache = new UsedBytesCache(
      () => {
        calls++;
        return undefined;
      },
      () => 0,
    );
    expect(cache.usedBytes('/gone')).toBeUndefined();
    expect(cache.usedBytes('/gone')).toBeUndefined();
    expect(calls).toBe(1);
  });

  it('statfsUsedBytes reads a real file system and is undefined for a missing path', () => {
    const dir = mkdtempSync(join(tmpdir(), 'used-'));
    try {
      writeFileSync(join(dir, 'f'), Buffer.alloc(MiB));
      expect(statfsUsedBytes(dir)).toBeGreaterThan(0);
      expect(statfsUsedBytes(join(dir, 'missing'))).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('coarseUsedBytes', () => {
  it('rounds down to 1 MiB, and above 64 MiB to a power-of-two step within 1/64 of the value', () => {
    expect(coarseUsedBytes(0)).toBe(0);
    expect(coarseUsedBytes(MiB - 1)).toBe(0);
    expect(coarseUsedBytes(48 * MiB + 12345)).toBe(48 * MiB);
    expect(coarseUsedBytes(10 * 1024 * MiB + 5 * MiB)).toBe(10 * 1024 * MiB);
    for (const b of [3 * MiB + 7, 200 * MiB + 99, 7_777_777_777, 5e12]) {
      const c = coarseUsedBytes(b);
      expect(c).toBeLessThanOrEqual(b);
      expect(b - c).toBeLessThanOrEqual(Math.max(MiB, b / 64));
    }
  });
});

describe('DatasetAgent: used_bytes in its reports', () => {
  it('reports used_bytes for a mounted dataset, refreshed at most every few seconds', async () => {
    const clock = new ManualClock();
    const control = new FakeControl(clock);
    const host = new FakeHost();
    let used = 4096;
    const asked: string[] = [];
    const agent = new DatasetAgent(
      testAgentOptions({
        driver: new FakeDriver(),
        hostOps: host,
        control,
        clock,
        usedBytes: (path) => {
          asked.push(path);
          return used;
        },
      }),
    );
    const eventually = (check: () => boolean, ms = 5000): Promise<number> => clock.advanceUntil(check, ms, 5);
    agent.start();
    control.setDatasets([
      { dataset_id: DS, primary: TEST_NODE, maximum_size: 64 * MiB, metadata: { name: 'pg' }, deleted: false },
    ]);
    await eventually(() => control.last()?.manifestations.some((m) => m.status === 'mounted') === true);
    expect(control.last()?.manifestations[0]).toMatchObject({
      dataset_id: DS,
      status: 'mounted',
      path: `/flocker/${DS}`,
      used_bytes: 4096,
    });
    expect(new Set(asked)).toEqual(new Set([`/flocker/${DS}`]));
    const measuredBefore = asked.length;
    used = 3 * MiB;
    await eventually(() => control.last()?.manifestations[0]?.used_bytes === 3 * MiB, 3 * USED_BYTES_MAX_AGE_MS);
    // One measurement per max age at most, however often the report is built.
    for (let i = 0; i < 50; i++) agent.buildReport();
    expect(asked.length - measuredBefore).toBeLessThanOrEqual(2);
    await agent.stop();
  });
});
