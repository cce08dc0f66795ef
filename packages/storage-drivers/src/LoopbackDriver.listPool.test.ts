/**
 * listPool reads the records synchronously (issue 23, session 16: a worker's look lists the pool, and the look after
 * a move's unmount is on its critical path), giving the event loop a turn every GUARD_READS_PER_TURN records. What
 * it lists is unchanged: every readable record (by creation, then id), every unreadable one as a problem, temp files
 * and other names left out.
 */
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { closeLoopbackDrivers, LoopbackDriver } from './testing/closingLoopbackDriver';
import { destroyTempRoot, makeTempRoot } from './testing/testSupport';

// Ends each driver's helper processes (see closingLoopbackDriver.ts).
afterEach(closeLoopbackDrivers);

const MiB = 1024 * 1024;
let root: string;

beforeEach(async () => {
  root = await makeTempRoot('flocker-listpool-');
});
afterEach(async () => {
  await destroyTempRoot(root);
});

function record(id: string, datasetId: string, created: string, attachedTo: string | null = null): string {
  return JSON.stringify({
    version: 1,
    blockdevice_id: id,
    dataset_id: datasetId,
    size: 64 * MiB,
    attached_to: attachedTo,
    created,
  });
}

describe('LoopbackDriver.listPool', () => {
  it('lists every readable record in order and every unreadable one as a problem, skipping temps and other files', async () => {
    const driver = new LoopbackDriver({ rootPath: root, instanceId: 'i-a' });
    await driver.listPool(); // makes the pool's directories
    const volumes = path.join(root, 'volumes');
    const ids = [randomUUID(), randomUUID(), randomUUID()];
    const datasets = [randomUUID(), randomUUID(), randomUUID()];
    await fs.writeFile(path.join(volumes, `${ids[0]}.json`), record(ids[0], datasets[0], '2026-01-02T00:00:00Z'));
    await fs.writeFile(
      path.join(volumes, `${ids[1]}.json`),
      record(ids[1], datasets[1], '2026-01-01T00:00:00Z', 'i-b'),
    );
    await fs.writeFile(path.join(volumes, `${ids[2]}.json`), record(ids[2], datasets[2], 'x').slice(0, 40)); // torn
    await fs.writeFile(path.join(volumes, `${ids[0]}.json.tmp-1-abcd`), 'not a record');
    await fs.writeFile(path.join(volumes, 'notes.json'), '{}');
    const listing = await driver.listPool();
    expect(listing.volumes.map((v) => [v.blockdeviceId, v.attachedTo])).toEqual([
      [ids[1], 'i-b'],
      [ids[0], null],
    ]);
    expect(listing.problems.map((p) => p.blockdeviceId)).toEqual([ids[2]]);
  });

  it('gives the event loop a turn while it reads a large pool, and lists all of it', async () => {
    const driver = new LoopbackDriver({ rootPath: root, instanceId: 'i-a' });
    await driver.listPool();
    const volumes = path.join(root, 'volumes');
    const n = 300;
    for (let i = 0; i < n; i++) {
      const id = randomUUID();
      await fs.writeFile(path.join(volumes, `${id}.json`), record(id, randomUUID(), `2026-01-01T00:00:${i}`));
    }
    let turned = false;
    setImmediate(() => (turned = true));
    const listing = listPoolAnd(driver, () => turned);
    const { volumes: listed, sawTurn } = await listing;
    expect(listed).toHaveLength(n);
    expect(sawTurn).toBe(true);
  });
});

/** listPool, and whether `turned` was true when it returned (a turn of the event loop ran inside it). */
async function listPoolAnd(
  driver: LoopbackDriver,
  turned: () => boolean,
): Promise<{ volumes: unknown[]; sawTurn: boolean }> {
  const { volumes } = await driver.listPool();
  return { volumes, sawTurn: turned() };
}
