/** executeAction for snapshots and clones (issue 20): freeze around the snapshot, thaw always, idempotence. */
import winston from 'winston';
import { Writable } from 'node:stream';
import { StorageError } from '@flocker/storage-drivers';
import { executeAction, type ExecutionContext } from './executeAction';
import { FakeDriver, FakeHost } from './testing/fakes';

const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const CLONE = 'cccccccc-cccc-4ccc-8ccc-cccccccccccc';
const SNAP = '5a5a5a5a-0000-4000-8000-000000000001';
const MiB = 1024 * 1024;
const PATH = `/flocker/${DS}`;

function ctx(): ExecutionContext & { driver: FakeDriver; host: FakeHost; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  const logger = winston.createLogger({
    format: winston.format.json(),
    transports: [new winston.transports.Stream({ stream })],
  });
  return { driver: new FakeDriver(), host: new FakeHost(), instanceId: 'i-me', logger, lines };
}

async function volumeHere(c: ReturnType<typeof ctx>): Promise<string> {
  const v = await c.driver.createVolume(DS, 128 * MiB);
  await c.driver.attachVolume(v.blockdeviceId, 'i-me');
  return v.blockdeviceId;
}

describe('executeAction: snapshots and clones', () => {
  it('takeSnapshot of a mounted volume freezes the file system just around the snapshot and logs the frozen window', async () => {
    const c = ctx();
    const id = await volumeHere(c);
    const order: string[] = [];
    const create = c.driver.createSnapshot.bind(c.driver);
    c.driver.createSnapshot = async (b, s) => {
      order.push(`snapshot while frozen=${c.host.frozen.has(PATH)}`);
      return create(b, s);
    };
    await executeAction(
      { kind: 'takeSnapshot', datasetId: DS, blockdeviceId: id, snapshotId: SNAP, mountPath: PATH },
      c,
    );
    expect(order).toEqual(['snapshot while frozen=true']);
    expect(c.host.freezeLog).toEqual([`freeze ${PATH}`, `thaw ${PATH}`]);
    expect(c.host.frozen.size).toBe(0);
    expect(c.driver.snapshots.get(SNAP)).toMatchObject({ datasetId: DS, sourceBlockdeviceId: id, size: 128 * MiB });
    const logged = c.lines.find((l) => l['message'] === 'file system frozen for a snapshot');
    expect(logged).toMatchObject({ datasetId: DS, snapshotId: SNAP, mountPath: PATH });
    expect(typeof logged?.['frozenMs']).toBe('number');
    // Again (a retry after a crash that took it already): the same snapshot, nothing new.
    await executeAction(
      { kind: 'takeSnapshot', datasetId: DS, blockdeviceId: id, snapshotId: SNAP, mountPath: PATH },
      c,
    );
    expect(c.driver.snapshots.size).toBe(1);
  });

  it('thaws as soon as the driver says the point in time is fixed, once, before it finishes', async () => {
    const c = ctx();
    const id = await volumeHere(c);
    const order: string[] = [];
    const create = c.driver.createSnapshot.bind(c.driver);
    c.driver.createSnapshot = async (b, s, options) => {
      order.push(`copy while frozen=${c.host.frozen.has(PATH)}`);
      await options?.pointInTimeFixed?.();
      await options?.pointInTimeFixed?.(); // a second call thaws nothing more
      order.push(`durable while frozen=${c.host.frozen.has(PATH)}`);
      return create(b, s);
    };
    await executeAction(
      { kind: 'takeSnapshot', datasetId: DS, blockdeviceId: id, snapshotId: SNAP, mountPath: PATH },
      c,
    );
    expect(order).toEqual(['copy while frozen=true', 'durable while frozen=false']);
    expect(c.host.freezeLog).toEqual([`freeze ${PATH}`, `thaw ${PATH}`]);
    expect(c.lines.filter((l) => l['message'] === 'file system frozen for a snapshot')).toHaveLength(1);
  });

  it('a failing snapshot still thaws, and the failure is the snapshot’s', async () => {
    const c = ctx();
    const id = await volumeHere(c);
    c.driver.createSnapshot = async () => {
      throw new StorageError('BACKEND_ERROR', 'copy failed');
    };
    await expect(
      executeAction({ kind: 'takeSnapshot', datasetId: DS, blockdeviceId: id, snapshotId: SNAP, mountPath: PATH }, c),
    ).rejects.toMatchObject({ code: 'BACKEND_ERROR' });
    expect(c.host.freezeLog).toEqual([`freeze ${PATH}`, `thaw ${PATH}`]);
    expect(c.host.frozen.size).toBe(0);
  });

  it('a volume not mounted is not frozen', async () => {
    const c = ctx();
    const id = await volumeHere(c);
    await executeAction({ kind: 'takeSnapshot', datasetId: DS, blockdeviceId: id, snapshotId: SNAP }, c);
    expect(c.host.freezeLog).toEqual([]);
    expect(c.driver.snapshots.has(SNAP)).toBe(true);
  });

  it('destroySnapshot is idempotent (gone already: done)', async () => {
    const c = ctx();
    const id = await volumeHere(c);
    await c.driver.createSnapshot(id, SNAP);
    await executeAction({ kind: 'destroySnapshot', datasetId: DS, snapshotId: SNAP }, c);
    await executeAction({ kind: 'destroySnapshot', datasetId: DS, snapshotId: SNAP }, c);
    expect(c.driver.snapshots.size).toBe(0);
  });

  it('a clone is made from the snapshot, at least as big as it, once; not reported as a blank volume', async () => {
    const c = ctx();
    const id = await volumeHere(c);
    await c.driver.createSnapshot(id, SNAP);
    const created: string[] = [];
    const withHook = { ...c, onCreated: (v: { blockdeviceId: string }) => void created.push(v.blockdeviceId) };
    // Asked 64 MiB (the snapshot was not taken yet when the clone was configured): made 128 MiB.
    const result = await executeAction(
      { kind: 'create', datasetId: CLONE, size: 64 * MiB, sourceSnapshotId: SNAP },
      withHook,
    );
    expect(result.created).toMatchObject({ datasetId: CLONE, size: 128 * MiB, attachedTo: null });
    expect(c.driver.clonedFrom.get(result.created?.blockdeviceId ?? '')).toBe(SNAP);
    expect(created).toEqual([]);
    await executeAction({ kind: 'create', datasetId: CLONE, size: 64 * MiB, sourceSnapshotId: SNAP }, withHook);
    expect([...c.driver.volumes.values()].filter((v) => v.datasetId === CLONE)).toHaveLength(1);
  });

  it('a clone of a snapshot not ready fails with SNAPSHOT_NOT_READY (the agent retries), of an unknown one UNKNOWN_SNAPSHOT', async () => {
    const c = ctx();
    const id = await volumeHere(c);
    c.driver.newSnapshotStatus = 'creating';
    await c.driver.createSnapshot(id, SNAP);
    const clone = { kind: 'create', datasetId: CLONE, size: 128 * MiB, sourceSnapshotId: SNAP } as const;
    await expect(executeAction(clone, c)).rejects.toMatchObject({ code: 'SNAPSHOT_NOT_READY' });
    await expect(executeAction({ ...clone, sourceSnapshotId: DS }, c)).rejects.toMatchObject({
      code: 'UNKNOWN_SNAPSHOT',
      message: expect.stringMatching(/has no snapshot .* \(yet: its source's primary node takes it/),
    });
    expect([...c.driver.volumes.values()].filter((v) => v.datasetId === CLONE)).toHaveLength(0);
  });
});
