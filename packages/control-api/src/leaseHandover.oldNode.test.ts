/**
 * A node one release behind meets a lease an upgraded node's plugin keeps idle (session 21, docs/compatibility.md):
 * its views show a plain lease (Views.leaseMembers.test), and its plugin's requests get the hand-over like anyone's.
 * The previous release's plugin takes a lease as below (FlockerVolumeBackend.takeLease before 842e2d9): a POST without
 * release_on_request, conditional on the configuration tag it read first, then unconditional after a 412, through a
 * client whose requests time out after 30 s — longer than the longest hand-over wait (20 s).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ClusterSnapshot, FlockerClient, Lease } from '@flocker/api';
import { FileConfigurationStore } from './ConfigurationStore';
import { type ControlService, startControlService } from './server';
import { HOLDER, holderAnswers, idleVolume, REQUESTER, timed } from './testing/handover';
import { nodeReport, silentLogger } from './testing/httpService';

jest.setTimeout(60_000);

/** The previous release's strict lease and whole view (only the lease's two members are new since). */
const PreviousLease = Lease.omit({ release_on_request: true, release_requested: true }).strict();
const PreviousSnapshot = ClusterSnapshot.extend({ leases: PreviousLease.array() }).strict();

let svc: ControlService;
let dir: string;
afterEach(async () => {
  await svc.close();
  rmSync(dir, { recursive: true, force: true });
});

it('an old node’s plugin: sees a plain lease, and its conditional lease POST waits and is granted once the holder lets go', async () => {
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
  // Plain HTTP: no certificate says who asks, and an alive node is behind.
  expect(PreviousSnapshot.parse(raw).leases.find((l) => l.dataset_id === id)?.node_uuid).toBe(HOLDER);
  const tag = (await client.listDatasetsTagged()).configurationTag;
  const asked = timed(
    client.acquireLease(
      { dataset_id: id, node_uuid: REQUESTER, expires: null, holder: 'docker' },
      { ifConfigurationMatches: tag },
    ),
  );
  expect((await holderAnswers(client, id, 'release'))?.release_requested?.by).toBe(REQUESTER);
  const { value, error, ms } = await asked;
  expect(error).toBeUndefined();
  expect(PreviousLease.parse(value)).toMatchObject({ dataset_id: id, node_uuid: REQUESTER });
  expect(ms).toBeLessThan(20_000);
});
