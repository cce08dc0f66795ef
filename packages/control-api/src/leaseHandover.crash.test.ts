/**
 * kill -9 of the control service while a lease hand-over is pending (session 21): the request recorded on the lease
 * survives the restart (a durable lease change like any other); the interrupted request's client got no answer and
 * asks again, which waits on the same request and is granted once the holder lets go. Also --handover-wait's check.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { FlockerClient } from '@flocker/api';
import { checkHandoverWait } from './server';
import { killHard, startControlChild } from './testing/controlProcess';
import { holderAnswers, idleVolume, leaseBecomes, REQUESTER, timed } from './testing/handover';

jest.setTimeout(60_000);

const startChild = (dataDir: string) => startControlChild(dataDir, '--handover-wait', '20');

describe('lease hand-over and kill -9', () => {
  let dir: string;
  const children: ChildProcess[] = [];
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'flocker-handover-crash-'));
  });
  afterAll(async () => {
    await Promise.all(children.map(killHard));
    rmSync(dir, { recursive: true, force: true });
  });

  it('a request pending at the kill survives; the request sent again waits on it and is granted', async () => {
    const first = await startChild(dir);
    children.push(first.child);
    const before = new FlockerClient({ baseUrl: first.url, timeoutMs: 30_000 });
    const id = await idleVolume(before, 'idle');
    const cut = timed(before.acquireLease({ dataset_id: id, node_uuid: REQUESTER, expires: null }));
    await leaseBecomes(before, id, (l) => l?.release_requested !== undefined);
    await killHard(first.child);
    expect((await cut).error?.status).toBe(0);

    const second = await startChild(dir);
    children.push(second.child);
    const client = new FlockerClient({ baseUrl: second.url, timeoutMs: 30_000 });
    // Both nodes report again after the restart (the holder alive: its lease is asked for, not waited out).
    await idleVolume(client, 'another');
    const pending = await leaseBecomes(client, id, () => true);
    expect(pending?.release_requested?.by).toBe(REQUESTER);
    const again = timed(client.acquireLease({ dataset_id: id, node_uuid: REQUESTER, expires: null }));
    await holderAnswers(client, id, 'release');
    const { value, error } = await again;
    expect(error).toBeUndefined();
    expect(value?.node_uuid).toBe(REQUESTER);
  });

  it("kill -9 once the holder's release is answered: the requester holds the lease after the restart (session 22: one commit)", async () => {
    const sub = path.join(dir, 'one-commit');
    const first = await startChild(sub);
    children.push(first.child);
    const before = new FlockerClient({ baseUrl: first.url, timeoutMs: 30_000 });
    const id = await idleVolume(before, 'idle');
    const cut = timed(before.acquireLease({ dataset_id: id, node_uuid: REQUESTER, expires: null, holder: 'docker' }));
    // The release's answer comes once its commit is durable: the grant is in it, whether or not the requester's
    // answer got out before the kill.
    await holderAnswers(before, id, 'release');
    await killHard(first.child);
    const answered = await cut;
    expect(answered.error === undefined || answered.error.status === 0).toBe(true);

    const second = await startChild(sub);
    children.push(second.child);
    const client = new FlockerClient({ baseUrl: second.url, timeoutMs: 30_000 });
    const lease = (await client.listLeases()).find((l) => l.dataset_id === id);
    expect(lease?.node_uuid).toBe(REQUESTER);
    // The requester, unanswered, asks again: its own lease, granted at once.
    expect(
      (await client.acquireLease({ dataset_id: id, node_uuid: REQUESTER, expires: null, holder: 'docker' })).node_uuid,
    ).toBe(REQUESTER);
  });

  it('--handover-wait: 0 to 20 seconds', () => {
    expect(checkHandoverWait(5)).toBe(5000);
    expect(checkHandoverWait(0)).toBe(0);
    expect(checkHandoverWait(0.25)).toBe(250);
    for (const bad of [-1, 21, Number.NaN, Number.POSITIVE_INFINITY])
      expect(() => checkHandoverWait(bad)).toThrow(expect.objectContaining({ code: 'INVALID_HANDOVER_WAIT' }));
  });
});
