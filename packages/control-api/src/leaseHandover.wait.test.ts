/**
 * The lease hand-over over HTTP on the file store (session 21; the decisions: leaseHandover.test, two etcd replicas:
 * etcd/leaseHandover.etcd.test). A request a release_on_request lease of a live node refuses — another node's lease
 * POST, an administrator's move, a dataset DELETE — asks for it and waits: granted once the holder lets go, refused at
 * once when it declines, refused after the wait when it does nothing; a plain lease refuses at once as before. Nothing
 * is left waiting afterwards, nor when the client goes away.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FlockerClient } from '@flocker/api';
import { type ControlService, startControlService } from './server';
import { FileConfigurationStore } from './ConfigurationStore';
import { eventually, HOLDER, holderAnswers, idleVolume, leaseBecomes, REQUESTER, timed } from './testing/handover';
import { nodeReport, silentLogger } from './testing/httpService';
import { releaseVersion } from '@flocker/metrics';

jest.setTimeout(60_000);

const dirs: string[] = [];
const services: ControlService[] = [];

async function start(
  handoverWaitSeconds: number,
  more: { nodeTimeoutSeconds?: number; leaseGraceSeconds?: number } = {},
): Promise<{ svc: ControlService; client: FlockerClient }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'flocker-handover-'));
  dirs.push(dir);
  const svc = await startControlService({
    port: 0,
    host: '127.0.0.1',
    store: new FileConfigurationStore(dir),
    logger: silentLogger,
    handoverWaitSeconds,
    ...more,
  });
  services.push(svc);
  return { svc, client: new FlockerClient({ baseUrl: svc.url, timeoutMs: 30_000 }) };
}

afterEach(async () => {
  await Promise.all(services.splice(0).map((s) => s.close()));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A wait long enough that an answer well before it is the holder's doing, not the timeout. */
const LONG = 20;

describe('lease hand-over (file store)', () => {
  it('a late decline of an older request leaves a newer one pending: its requester waits and is granted (review R1 F5)', async () => {
    const { client } = await start(LONG);
    const id = await idleVolume(client, 'idle');
    // The first request (the requester's lease POST), declined: a container on the holder used the volume then.
    const first = timed(client.acquireLease({ dataset_id: id, node_uuid: REQUESTER, expires: null, holder: 'docker' }));
    const r1 = (await leaseBecomes(client, id, (l) => l?.release_requested !== undefined))?.release_requested;
    if (r1 === undefined) throw new Error('no request');
    await client.declineReleaseRequest(id, { request: r1 });
    expect((await first).error?.code).toBe('LEASE_HELD');
    // The container exits; an administrator's DELETE asks again (a newer request) ...
    const second = timed(client.deleteDataset(id));
    const r2 = (await leaseBecomes(client, id, (l) => l?.release_requested?.by === 'api'))?.release_requested;
    expect(r2).not.toEqual(r1);
    // ... and the first decline, repeated late (a retry), does not clear it.
    const late = await client.declineReleaseRequest(id, { request: r1 });
    expect(late.release_requested).toEqual(r2);
    expect((await client.listLeases()).find((l) => l.dataset_id === id)?.release_requested).toEqual(r2);
    // The holder lets go of the idle lease, as asked: the DELETE proceeds.
    await client.releaseLease(id, { holder: 'docker' });
    const { error, value } = await second;
    expect(error).toBeUndefined();
    expect(value?.deleted).toBe(true);
  });

  it('a decline without the request it answers (a plugin before it) clears whatever is pending, as before', async () => {
    const { client } = await start(LONG);
    const id = await idleVolume(client, 'idle');
    const asked = timed(client.deleteDataset(id));
    await leaseBecomes(client, id, (l) => l?.release_requested !== undefined);
    expect((await client.declineReleaseRequest(id)).release_requested).toBeUndefined();
    expect((await asked).error?.code).toBe('LEASE_HELD');
  });

  it("another node's lease POST waits, and is granted once the holder lets go", async () => {
    const { svc, client } = await start(LONG);
    const id = await idleVolume(client, 'idle');
    const asked = timed(client.acquireLease({ dataset_id: id, node_uuid: REQUESTER, expires: null, holder: 'docker' }));
    const seen = await holderAnswers(client, id, 'release');
    expect(seen?.release_requested?.by).toBe(REQUESTER);
    const { value, error, ms } = await asked;
    expect(error).toBeUndefined();
    expect(value).toMatchObject({ dataset_id: id, node_uuid: REQUESTER });
    expect(ms).toBeLessThan(LONG * 1000);
    expect(svc.state.configurationListenerCount).toBe(0);
  });

  it("an administrator's move waits and moves; a DELETE waits and deletes", async () => {
    const { svc, client } = await start(LONG);
    const moved = await idleVolume(client, 'moved');
    const move = timed(client.updateDataset(moved, { primary: REQUESTER }));
    await holderAnswers(client, moved, 'release');
    expect((await move).value?.primary).toBe(REQUESTER);
    const deleted = await idleVolume(client, 'deleted');
    const del = timed(client.deleteDataset(deleted));
    const seen = await holderAnswers(client, deleted, 'release');
    expect(seen?.release_requested?.by).toBe('api');
    expect((await del).value?.deleted).toBe(true);
    expect(svc.state.configurationListenerCount).toBe(0);
  });

  it('a decline refuses at once, saying a container uses it there; the lease stays, without the request', async () => {
    const { svc, client } = await start(LONG);
    const id = await idleVolume(client, 'busy');
    const asked = timed(client.acquireLease({ dataset_id: id, node_uuid: REQUESTER, expires: null }));
    await holderAnswers(client, id, 'decline');
    const { error, ms } = await asked;
    expect({ status: error?.status, code: error?.code }).toEqual({ status: 409, code: 'LEASE_HELD' });
    expect(error?.description).toMatch(/declined to let go of it: a container on 10.0.0.1 uses it\.$/);
    expect(ms).toBeLessThan(LONG * 1000);
    const lease = await leaseBecomes(client, id, () => true);
    expect(lease).toMatchObject({ node_uuid: HOLDER, release_on_request: true });
    expect(lease?.release_requested).toBeUndefined();
    expect(svc.state.configurationListenerCount).toBe(0);
  });

  it('a holder that does nothing: refused after the wait, saying what to check', async () => {
    const { svc, client } = await start(0.5);
    const id = await idleVolume(client, 'silent');
    const { error, ms } = await timed(client.updateDataset(id, { primary: REQUESTER }));
    expect(error?.code).toBe('LEASE_HELD');
    expect(error?.description).toMatch(/did not within 0\.5 s \(is the Docker plugin on 10.0.0.1 running\?\)\.$/);
    expect(ms).toBeGreaterThanOrEqual(450);
    // The request stays on the lease (harmless: the holder lets go of an idle lease when it sees it).
    expect((await leaseBecomes(client, id, () => true))?.release_requested?.by).toBe('api');
    // The agent channel's views carry it too (read strictly, as the plugins and agents read them).
    const view = await client.waitForCluster(undefined, 0);
    expect(view.leases.find((l) => l.dataset_id === id)).toMatchObject({
      release_on_request: true,
      release_requested: { by: 'api' },
    });
    const nodeView = await client.waitForCluster(undefined, 0, { node: HOLDER });
    expect(nodeView.leases.find((l) => l.dataset_id === id)?.release_requested?.by).toBe('api');
    expect((await client.getDataset(id)).primary).toBe(HOLDER);
    expect(svc.state.configurationListenerCount).toBe(0);
  });

  it('a lease without release_on_request refuses at once as before, and records nothing', async () => {
    const { client } = await start(LONG);
    const id = await idleVolume(client, 'plain', false);
    const { error, ms } = await timed(client.acquireLease({ dataset_id: id, node_uuid: REQUESTER, expires: null }));
    expect(error?.code).toBe('LEASE_HELD');
    expect(error?.description).toBe(`The dataset ${id} is already leased by node ${HOLDER} (used there by docker).`);
    expect(ms).toBeLessThan(LONG * 1000);
    expect((await leaseBecomes(client, id, () => true))?.release_requested).toBeUndefined();
  });

  it('a holder declared dead: refused at once as before (the lease grace decides), nothing recorded', async () => {
    const { client } = await start(LONG, { nodeTimeoutSeconds: 1, leaseGraceSeconds: 600 });
    const id = await idleVolume(client, 'dead-holder');
    const deadline = Date.now() + 30_000;
    while ((await client.waitForCluster(undefined, 0)).nodes.find((n) => n.uuid === HOLDER)?.alive !== false) {
      if (Date.now() > deadline) throw new Error('holder not declared dead in time');
      await new Promise((r) => setTimeout(r, 50));
    }
    // The requester reports again: it is alive (a node held dead is granted no lease: NODE_DEAD, 3dc52b7); the holder stays dead.
    await client.reportNodeState(nodeReport(REQUESTER, { version: releaseVersion() }));
    const { error, ms } = await timed(client.acquireLease({ dataset_id: id, node_uuid: REQUESTER, expires: null }));
    expect(error?.code).toBe('LEASE_HELD');
    expect(ms).toBeLessThan(LONG * 1000);
    expect((await leaseBecomes(client, id, () => true))?.release_requested).toBeUndefined();
  });

  it('--handover-wait 0: refused at once as before, nothing recorded; the kept lease reads as held, not used', async () => {
    const { client } = await start(0);
    const id = await idleVolume(client, 'off');
    const { error } = await timed(client.deleteDataset(id));
    expect(error?.description).toBe(
      `The dataset ${id} cannot be deleted: node ${HOLDER} (held there by docker, kept while no container uses it) holds a lease on it. Release the lease first.`,
    );
    expect((await leaseBecomes(client, id, () => true))?.release_requested).toBeUndefined();
  });

  it('a conditional request keeps its condition across the hand-over: granted, not 412', async () => {
    const { client } = await start(LONG);
    const id = await idleVolume(client, 'conditional');
    const tag = (await client.listDatasetsTagged()).configurationTag;
    const asked = timed(
      client.acquireLease({ dataset_id: id, node_uuid: REQUESTER, expires: null }, { ifConfigurationMatches: tag }),
    );
    await holderAnswers(client, id, 'release');
    const { value, error } = await asked;
    expect(error).toBeUndefined();
    expect(value?.node_uuid).toBe(REQUESTER);
  });

  it('a condition broken meanwhile by another change: 412 as usual', async () => {
    const { client } = await start(LONG);
    const id = await idleVolume(client, 'changed');
    const tag = (await client.listDatasetsTagged()).configurationTag;
    const asked = timed(client.updateDataset(id, { primary: REQUESTER }, { ifConfigurationMatches: tag }));
    await leaseBecomes(client, id, (l) => l?.release_requested !== undefined);
    await client.createDataset({ primary: HOLDER, metadata: { name: 'another' } });
    await client.releaseLease(id, { holder: 'docker' });
    const { error } = await asked;
    expect({ status: error?.status, code: error?.code }).toEqual({ status: 412, code: 'CONFIGURATION_CHANGED' });
  });

  it('a client that goes away while waiting leaves no waiter behind', async () => {
    const { svc, client } = await start(LONG);
    const id = await idleVolume(client, 'gone');
    const abort = new AbortController();
    const body = JSON.stringify({ dataset_id: id, node_uuid: REQUESTER, expires: null });
    const cut = fetch(`${svc.url}/v1/configuration/leases`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json' },
      signal: abort.signal,
    }).catch(() => undefined);
    await eventually(() => svc.state.configurationListenerCount === 1);
    abort.abort();
    await cut;
    await eventually(() => svc.state.configurationListenerCount === 0);
    // The lease as it was, its request pending (harmless: see the file comment of handoverWait.ts).
    const lease = await leaseBecomes(client, id, () => true);
    expect(lease).toMatchObject({ node_uuid: HOLDER, release_requested: { by: REQUESTER } });
  });
});
