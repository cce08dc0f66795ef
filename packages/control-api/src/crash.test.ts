/**
 * Durability under kill -9: the real CLI runs as a child process while writers
 * create datasets; after each SIGKILL and restart the stored configuration must
 * hold every acknowledged create, and nothing but those plus the ones in flight —
 * also while the log is compacted continuously and after torn (partial) appends.
 */
import { randomUUID } from 'node:crypto';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { FlockerClient } from '@flocker/api';
import { CONFIGURATION_FILE, LOG_FILE } from './ConfigurationStore';
import { killHard, startControlChild } from './testing/controlProcess';
import { nodeReport } from './testing/httpService';

const NODE = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const ROUNDS = 5;
const WRITERS = 4;
/** Writes each round has acknowledged before its kill may come (the totals checked at the end then hold at any load). */
const MIN_PER_ROUND = 6;

/** Resolves once `done()` holds (polled), then after a random further 0..`jitterMs` ms: a kill lands mid-write, at a random point. */
async function afterAtLeast(done: () => boolean, jitterMs: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!done()) {
    if (Date.now() > deadline) throw new Error('the writers made no progress within 30 s');
    await new Promise((r) => setTimeout(r, 5));
  }
  await new Promise((r) => setTimeout(r, Math.floor(Math.random() * jitterMs)));
}

const startChild = (dataDir: string, extraArgs: readonly string[] = []) => startControlChild(dataDir, ...extraArgs);

describe('crash safety (kill -9 during a write loop)', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'flocker-crash-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Kills the server ROUNDS times mid-write; `afterKill` may damage the files as a crash could. */
  async function killLoop(extraArgs: readonly string[] = [], afterKill: () => void = () => undefined): Promise<void> {
    const acked = new Set<string>();
    let everInFlight = new Set<string>();
    for (let round = 0; round < ROUNDS; round++) {
      const { child, url } = await startChild(dir, extraArgs);
      const client = new FlockerClient({ baseUrl: url, timeoutMs: 5000 });

      // The configuration after restart: acknowledged ones all there, extras only from the in-flight set.
      const stored = new Set((await client.listDatasets()).map((d) => d.dataset_id));
      for (const id of acked) expect(stored.has(id)).toBe(true);
      for (const id of stored) if (!acked.has(id)) expect(everInFlight.has(id)).toBe(true);
      // An in-flight write that did land counts as written from now on.
      for (const id of stored) acked.add(id);

      if (round === 0) await client.reportNodeState(nodeReport(NODE));
      const inFlight = new Set<string>();
      let stop = false;
      const writer = async (): Promise<void> => {
        while (!stop) {
          const id = randomUUID();
          inFlight.add(id);
          try {
            await client.createDataset({ primary: NODE, dataset_id: id });
          } catch {
            return; // the server died under us
          }
          if (stop) return; // acknowledged after the kill was decided; still fine to count
          acked.add(id);
          inFlight.delete(id);
        }
      };
      const ackedBefore = acked.size;
      const writers = Array.from({ length: WRITERS }, writer);
      // Not a fixed time: under load a round's 100-400 ms may hold fewer writes than the total checked below.
      await afterAtLeast(() => acked.size >= ackedBefore + MIN_PER_ROUND, 300);
      await killHard(child);
      stop = true;
      await Promise.all(writers);
      everInFlight = inFlight;
      expect(acked.size).toBeGreaterThan(round);
      afterKill();
    }
    const { child, url } = await startChild(dir, extraArgs);
    try {
      const stored = new Set((await new FlockerClient({ baseUrl: url }).listDatasets()).map((d) => d.dataset_id));
      for (const id of acked) expect(stored.has(id)).toBe(true);
      for (const id of stored) if (!acked.has(id)) expect(everInFlight.has(id)).toBe(true);
      expect(stored.size).toBeGreaterThan(ROUNDS * 5);
    } finally {
      await killHard(child);
    }
  }

  it(`keeps exactly the acknowledged writes across ${ROUNDS} kills`, async () => {
    await killLoop();
  }, 180_000);

  it('keeps them too while the log is compacted all the time and after torn appends', async () => {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir);
    const logPath = path.join(dir, LOG_FILE);
    // A crash can cut an append short anywhere: leave a partial, unacknowledged record behind.
    const torn = [
      '0badc0de {"version":99999999,"ops":[{"op":"dataset","value":{"dataset_id":"',
      '\0\0\0\0\0\0',
      '{"vers',
    ];
    let round = 0;
    await killLoop(['--compact-log-bytes', '2048'], () => {
      appendFileSync(logPath, torn[round++ % torn.length] as string);
    });
    const snapshot = JSON.parse(readFileSync(path.join(dir, CONFIGURATION_FILE), 'utf8')) as {
      version: number;
      datasets: unknown[];
    };
    expect(snapshot.datasets.length).toBeGreaterThan(0);
    expect(statSync(logPath).size).toBeLessThan(2 * statSync(path.join(dir, CONFIGURATION_FILE)).size + 16384);
  }, 180_000);

  it(`keeps every acknowledged DELETE across ${ROUNDS} kills (docker volume rm answers only once it is durable)`, async () => {
    const deleteDir = mkdtempSync(path.join(tmpdir(), 'flocker-crash-delete-'));
    try {
      const deleted = new Set<string>();
      for (let round = 0; round < ROUNDS; round++) {
        const { child, url } = await startChild(deleteDir);
        const client = new FlockerClient({ baseUrl: url, timeoutMs: 5000 });
        const stored = await client.listDatasets();
        // An acknowledged delete is there after the kill: the dataset shows deleted (or not at all).
        for (const d of stored) if (deleted.has(d.dataset_id)) expect(d.deleted).toBe(true);
        if (round === 0) await client.reportNodeState(nodeReport(NODE));
        const live = stored.filter((d) => !d.deleted).map((d) => d.dataset_id);
        while (live.length < 200) live.push((await client.createDataset({ primary: NODE })).dataset_id);
        let stop = false;
        const writer = async (): Promise<void> => {
          for (let id = live.pop(); id !== undefined && !stop; id = live.pop()) {
            try {
              await client.deleteDataset(id);
            } catch {
              return; // the server died under us
            }
            deleted.add(id);
          }
        };
        const deletedBefore = deleted.size;
        const writers = Array.from({ length: WRITERS }, writer);
        await afterAtLeast(() => deleted.size >= deletedBefore + MIN_PER_ROUND, 150);
        await killHard(child);
        stop = true;
        await Promise.all(writers);
        expect(deleted.size).toBeGreaterThan(round);
      }
      const { child, url } = await startChild(deleteDir);
      try {
        const stored = await new FlockerClient({ baseUrl: url }).listDatasets();
        for (const d of stored) if (deleted.has(d.dataset_id)) expect(d.deleted).toBe(true);
        expect(deleted.size).toBeGreaterThan(ROUNDS * 5);
      } finally {
        await killHard(child);
      }
    } finally {
      rmSync(deleteDir, { recursive: true, force: true });
    }
  }, 180_000);
});
