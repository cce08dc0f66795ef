/**
 * Scheduled snapshots survive kill -9 of the control service (issue 20): flocker-control run
 * as a process with --test-only-min-snapshot-interval 1 and a dataset on `every 1s` keep 3,
 * killed with SIGKILL at uneven moments and restarted on the same data directory, converges:
 * never two snapshots in one slot, the newest 3 live, every older one deleted, and after each
 * restart at most one snapshot for the current slot (no burst for the slots it missed).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import {
  FlockerClient,
  METADATA_SCHEDULED_KEY,
  METADATA_SNAPSHOT_KEEP_KEY,
  METADATA_SNAPSHOT_SCHEDULE_KEY,
  type SnapshotConfiguration,
} from '@flocker/api';
import { controlArgv, emptyNodeReport } from './testing/controlProcess';

jest.setTimeout(60_000);
const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const D1 = '11111111-1111-4111-8111-111111111111';
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Every flocker-control this file started: killed after each test, whatever happened. */
const children = new Set<ChildProcess>();
afterEach(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children.clear();
});

function start(dir: string): Promise<{ child: ChildProcess; client: FlockerClient }> {
  const child = spawn(
    process.execPath,
    controlArgv(dir, '--log-level', 'error', '--test-only-min-snapshot-interval', '1'),
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  children.add(child);
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line !== undefined) {
        const url = (JSON.parse(line) as { listening: string }).listening;
        resolve({ child, client: new FlockerClient({ baseUrl: url, timeoutMs: 5000 }) });
      }
    });
    child.once('exit', (exit) => reject(new Error(`flocker-control exited early (${exit})`)));
  });
}

const killHard = (child: ChildProcess): Promise<void> =>
  new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });

const scheduledOf = (all: SnapshotConfiguration[]): SnapshotConfiguration[] =>
  all.filter((s) => s.metadata[METADATA_SCHEDULED_KEY] !== undefined);

describe('scheduled snapshots and kill -9 of flocker-control', () => {
  it('converge: one per slot, the newest 3 live, no burst after a restart', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'flocker-schedule-crash-'));
    try {
      let { child, client } = await start(dir);
      await client.reportNodeState(emptyNodeReport(A));
      await client.createDataset({
        primary: A,
        dataset_id: D1,
        metadata: { name: 'db', [METADATA_SNAPSHOT_SCHEDULE_KEY]: 'every 1s', [METADATA_SNAPSHOT_KEEP_KEY]: '3' },
      });
      for (const [up, down] of [
        [2300, 2100],
        [1700, 3300],
        [2900, 1500],
      ] as const) {
        await sleep(up);
        await killHard(child);
        await sleep(down);
        const restartedAt = Date.now();
        ({ child, client } = await start(dir));
        const loadedAt = Date.now();
        const loaded = scheduledOf(await client.listSnapshots());
        await sleep(300);
        const after = scheduledOf(await client.listSnapshots());
        const afterAt = Date.now();
        // What the restart added: one per slot it saw (the current one, and the next if the
        // look spanned a second boundary on a busy machine), never one per missed second.
        const added = after.filter((s) => !loaded.some((x) => x.snapshot_id === s.snapshot_id));
        expect(added.length).toBeLessThanOrEqual(Math.floor(afterAt / 1000) - Math.floor(loadedAt / 1000) + 1);
        for (const s of added) expect(Date.parse(s.created_at)).toBeGreaterThanOrEqual(restartedAt - 10);
      }
      await sleep(1500);
      const final = scheduledOf(await client.listSnapshots());
      await killHard(child);
      const slots = final.map((s) => Math.floor(Date.parse(s.created_at) / 1000));
      expect(new Set(slots).size).toBe(slots.length);
      const live = final.filter((s) => s.deleted !== true);
      expect(live.map((s) => s.created_at)).toEqual(
        final
          .map((s) => s.created_at)
          .sort()
          .slice(-3),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
