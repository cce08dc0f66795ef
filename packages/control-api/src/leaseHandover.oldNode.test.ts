/**
 * A node one release behind meets a lease an upgraded node's plugin keeps idle (session 21, docs/compatibility.md):
 * its views show a plain lease (Views.leaseMembers.test). With certificates its plugin's requests get the hand-over
 * like anyone's. On plain HTTP every plugin follows the one view served to an unknown reader, which leaves the members
 * out while a node is behind: the holder's plugin could not hear a request, so the request is refused at once as for a
 * plain lease (review R1 F1), and the holder keeps nothing idle meanwhile (volume-plugin idleLeases.promisedInView).
 * The previous release's plugin takes a lease as below (FlockerVolumeBackend.takeLease before 842e2d9): a POST without
 * release_on_request, conditional on the configuration tag it read first, then unconditional after a 412, through a
 * client whose requests time out after 30 s — longer than the longest hand-over wait (20 s).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ClusterSnapshot, FlockerClient } from '@flocker/api';
import { releaseVersion } from '@flocker/metrics';
import { acquireLease, createDataset, releaseLease } from './configuration';
import { FileConfigurationStore, MemoryConfigurationStore } from './ConfigurationStore';
import { ControlState } from './ControlState';
import { WHOLE_CLUSTER } from './nodeViews';
import { routes } from './routes';
import { type ControlService, startControlService } from './server';
import { HOLDER, holderAnswers, idleVolume, REQUESTER, timed } from './testing/handover';
import { nodeReport, silentLogger } from './testing/httpService';
import { PreviousSnapshot } from './testing/previousRelease';
import { Views } from './Views';

jest.setTimeout(60_000);

let svc: ControlService | undefined;
let dir: string | undefined;
afterEach(async () => {
  await svc?.close();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  svc = undefined;
  dir = undefined;
});

it('an old node’s plugin on plain HTTP: sees a plain lease, and is refused at once while the holder cannot hear', async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'flocker-handover-old-'));
  svc = await startControlService({
    port: 0,
    host: '127.0.0.1',
    store: new FileConfigurationStore(dir),
    logger: silentLogger,
    handoverWaitSeconds: 20,
  });
  const client = new FlockerClient({ baseUrl: svc.url, timeoutMs: 30_000 });
  const id = await idleVolume(client, 'idle');
  // The requester's agent is one release behind.
  await client.reportNodeState(nodeReport(REQUESTER, { version: '0.0.9' }));
  const raw = await (await fetch(`${svc.url}/v1/agent/cluster`)).json();
  // Plain HTTP: no certificate says who asks, and an alive node is behind: the holder's plugin reads this view too.
  expect(PreviousSnapshot.parse(raw).leases.find((l) => l.dataset_id === id)?.node_uuid).toBe(HOLDER);
  const tag = (await client.listDatasetsTagged()).configurationTag;
  const { error, ms } = await timed(
    client.acquireLease(
      { dataset_id: id, node_uuid: REQUESTER, expires: null, holder: 'docker' },
      { ifConfigurationMatches: tag },
    ),
  );
  expect(error?.code).toBe('LEASE_HELD');
  expect(error?.description).not.toMatch(/asked to let go|declined/);
  expect(ms).toBeLessThan(10_000);
  expect((await client.listLeases()).find((l) => l.dataset_id === id)?.release_requested).toBeUndefined();
  // Once that node runs this release, the holder hears requests again: the next one waits and is granted.
  await client.reportNodeState(nodeReport(REQUESTER, { version: releaseVersion() }));
  const asked = timed(client.acquireLease({ dataset_id: id, node_uuid: REQUESTER, expires: null, holder: 'docker' }));
  expect((await holderAnswers(client, id, 'release'))?.release_requested?.by).toBe(REQUESTER);
  const granted = await asked;
  expect(granted.error).toBeUndefined();
  expect(granted.value).toMatchObject({ dataset_id: id, node_uuid: REQUESTER });
});

it('an old node’s plugin with certificates: its conditional lease POST waits and is granted once the holder lets go', async () => {
  // The route as the server calls it under TLS (identity from the node's certificate), the holder's agent current.
  const state = await ControlState.open({
    store: new MemoryConfigurationStore(),
    nodeTimeoutMs: 60_000,
    logger: silentLogger,
    livenessCheckMs: 60_000,
    handoverWaitMs: 20_000,
  });
  try {
    await state.report(nodeReport(HOLDER, { version: releaseVersion() }));
    await state.report(nodeReport(REQUESTER, { version: '0.0.9' }));
    const id = '00000000-1111-4111-8111-111111111111';
    await state.mutate((c) => createDataset(c, { primary: HOLDER, dataset_id: id, metadata: { name: 'idle' } }));
    await state.mutate((c, at) =>
      acquireLease(
        c,
        { dataset_id: id, node_uuid: HOLDER, expires: null, holder: 'docker', release_on_request: true },
        at,
      ),
    );
    const views = new Views(state);
    // The old node's view leaves the members out; the holder's carries them.
    expect(PreviousSnapshot.parse(JSON.parse(views.snapshotFor(WHOLE_CLUSTER, REQUESTER))).leases).toHaveLength(1);
    expect(ClusterSnapshot.parse(JSON.parse(views.snapshotFor(WHOLE_CLUSTER, HOLDER))).leases[0]).toMatchObject({
      release_on_request: true,
    });
    const route = routes.find((r) => r.method === 'post' && r.path === '/v1/configuration/leases');
    if (route === undefined) throw new Error('no route');
    const body = { dataset_id: id, node_uuid: REQUESTER, expires: null };
    const answer = Promise.resolve(
      route.handle(
        state,
        {
          params: {},
          query: {},
          body,
          ifMatches: state.configurationTag,
          signal: new AbortController().signal,
          identity: { kind: 'node', uuid: REQUESTER },
          reauthorize: undefined,
        },
        views,
      ),
    );
    const deadline = Date.now() + 10_000;
    while (state.configuration.leases.get(id)?.release_requested === undefined) {
      if (Date.now() > deadline) throw new Error('no request recorded');
      await new Promise((r) => setTimeout(r, 10));
    }
    await state.mutate((c, at) => releaseLease(c, id, at, 'docker'));
    const reply = await answer;
    expect(reply.status).toBe(201);
    expect(state.configuration.leases.get(id)?.node_uuid).toBe(REQUESTER);
  } finally {
    await state.close();
  }
});
