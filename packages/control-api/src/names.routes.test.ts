/**
 * The rules for new names (names.ts) over HTTP, on the file store: every create path answers a UUID-shaped name
 * 400 NAME_SHAPED_LIKE_ID with a JSON description and records nothing; a store holding such names from before the
 * rule keeps serving them (read, move, update, snapshot, lease, delete by id); unique_name makes concurrent creates
 * of one name one dataset, and a v1 client without it still makes duplicates.
 */
import { rmSync } from 'node:fs';
import { FlockerApiError, FlockerClient } from '@flocker/api';
import { type Configuration, emptyConfiguration, registerNode } from './configuration';
import { MemoryConfigurationStore } from './ConfigurationStore';
import type { ControlService } from './server';
import { D1, D2, D3, T0 } from './testing/fixtures';
import { NODE_A as A, NODE_B as B, nodeReport, startOnLoopback, startWithTwoNodes } from './testing/httpService';

jest.setTimeout(60_000);
const UUID_NAME = 'c6fcd4ab-6141-509f-95da-52a54a496abe';

/** `status code` of a refused call; throws if it succeeded. */
async function refused(call: Promise<unknown>): Promise<string> {
  try {
    await call;
  } catch (err) {
    if (err instanceof FlockerApiError) return `${err.status} ${err.code}`;
    throw err;
  }
  throw new Error('the call succeeded');
}

describe('new names on the file store', () => {
  let svc: ControlService;
  let client: FlockerClient;
  let dir: string;
  beforeAll(async () => {
    ({ svc, client, dir } = await startWithTwoNodes('names-routes-'));
  });
  afterAll(async () => {
    await svc.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('every create path refuses a UUID-shaped name: 400 with a JSON description and a stable code; nothing recorded', async () => {
    const source = await client.createDataset({ primary: A, metadata: { name: 'src' } });
    const snap = await client.createSnapshot({ dataset_id: source.dataset_id, metadata: { name: 'snap' } });
    const before = await client.listDatasetsTagged();
    // The raw answer: a JSON body with the sentence the CLI shows, and the code.
    const res = await fetch(`${svc.url}/v1/configuration/datasets`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ primary: A, metadata: { name: UUID_NAME.toUpperCase() } }),
    });
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await res.json()).toEqual({
      code: 'NAME_SHAPED_LIKE_ID',
      description: `"${UUID_NAME.toUpperCase()}" is shaped like a volume id: a new volume's name cannot be, since commands take a volume's name or its id. Choose another name.`,
    });
    const name = { name: UUID_NAME };
    const calls: Array<[string, Promise<unknown>]> = [
      [
        'clone of a snapshot',
        client.createDataset({ primary: A, metadata: name, source_snapshot_id: snap.snapshot_id }),
      ],
      [
        'clone of a dataset',
        client.createDataset({ primary: B, metadata: name, source_dataset_id: source.dataset_id }),
      ],
      ['unique_name create', client.createDataset({ primary: A, metadata: name, unique_name: true })],
      ['snapshot', client.createSnapshot({ dataset_id: source.dataset_id, metadata: name })],
      [
        'compose',
        client.compose({
          applications: { services: { db: { image: 'postgres', volumes: [`${UUID_NAME}:/data`] } } },
          deployment: { version: 1, nodes: { [A]: ['db'] } },
        }),
      ],
    ];
    for (const [what, call] of calls) expect([what, await refused(call)]).toEqual([what, '400 NAME_SHAPED_LIKE_ID']);
    // No rename either: a name never changes after creation (UpdateDatasetRequest), so no path makes one later.
    const rename = await fetch(`${svc.url}/v1/configuration/datasets/${source.dataset_id}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ metadata: name }),
    });
    expect([rename.status, ((await rename.json()) as { code?: string }).code]).toEqual([400, 'INVALID_REQUEST']);
    expect((await client.listDatasetsTagged()).configurationTag).toBe(before.configurationTag);
    expect(await client.listContainers()).toEqual([]);
    expect((await client.listSnapshots()).map((s) => s.metadata['name'])).toEqual(['snap']);
  });

  it('unique_name: concurrent creates of one name make one dataset, the others answered 409 naming it', async () => {
    const asks = Array.from({ length: 8 }, (_, i) =>
      client.createDataset({ primary: i % 2 === 0 ? A : B, metadata: { name: 'race' }, unique_name: true }),
    );
    const answers = await Promise.allSettled(asks);
    const made = answers.flatMap((a) => (a.status === 'fulfilled' ? [a.value] : []));
    expect(made).toHaveLength(1);
    for (const a of answers) {
      if (a.status === 'rejected')
        expect(a.reason).toMatchObject({
          status: 409,
          code: 'DATASET_NAME_IN_USE',
          description: expect.stringContaining(made[0]?.dataset_id ?? 'none') as unknown,
        });
    }
    const live = (await client.listDatasets()).filter((d) => !d.deleted && d.metadata['name'] === 'race');
    expect(live.map((d) => d.dataset_id)).toEqual([made[0]?.dataset_id]);
  });

  it('without unique_name a v1 client still makes a second dataset of a name (Flocker v1 allows it)', async () => {
    await client.createDataset({ primary: A, metadata: { name: 'dup' }, unique_name: true });
    await client.createDataset({ primary: A, metadata: { name: 'dup' } });
    expect((await client.listDatasets()).filter((d) => d.metadata['name'] === 'dup')).toHaveLength(2);
    // unique_name without a name to keep unique: a client's mistake, said rather than ignored.
    const res = await fetch(`${svc.url}/v1/configuration/datasets`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ primary: A, unique_name: true }),
    });
    const body = (await res.json()) as { code?: string; description?: string };
    expect([res.status, body.code]).toEqual([400, 'INVALID_REQUEST']);
    expect(body.description).toMatch(/unique_name needs a metadata name/);
  });
});

describe('a store holding UUID-shaped names from before the rule', () => {
  let svc: ControlService;
  let client: FlockerClient;
  beforeAll(async () => {
    const store = new MemoryConfigurationStore();
    const nodes: Configuration = registerNode(registerNode(emptyConfiguration, { uuid: A, host: '10.0.0.1' }), {
      uuid: B,
      host: '10.0.0.2',
    });
    store.committed = {
      ...nodes,
      version: 7,
      datasets: new Map([[D1, { dataset_id: D1, primary: A, metadata: { name: UUID_NAME }, deleted: false }]]),
      snapshots: new Map([
        [D3, { snapshot_id: D3, dataset_id: D1, metadata: { name: D2 }, created_at: new Date(T0).toISOString() }],
      ]),
    };
    svc = await startOnLoopback({ store });
    client = new FlockerClient({ baseUrl: svc.url, timeoutMs: 5000 });
    await client.reportNodeState(nodeReport(A));
    await client.reportNodeState(nodeReport(B));
  });
  afterAll(async () => {
    await svc.close();
  });

  it('serves them: read, update keeping the name, move, snapshot, clone, lease, delete by id', async () => {
    expect((await client.getDataset(D1)).metadata).toEqual({ name: UUID_NAME });
    expect((await client.getSnapshot(D3)).metadata).toEqual({ name: D2 });
    const scheduled = { 'clusterhq:flocker:snapshot-schedule': 'daily' };
    expect((await client.updateDataset(D1, { metadata: scheduled })).metadata).toEqual({
      name: UUID_NAME,
      ...scheduled,
    });
    expect((await client.updateDataset(D1, { primary: B })).primary).toBe(B);
    const snap = await client.createSnapshot({ dataset_id: D1, metadata: { name: 'nightly' } });
    const clone = await client.createDataset({ primary: B, metadata: { name: 'copy' }, source_snapshot_id: D3 });
    expect(clone.source_snapshot_id).toBe(D3);
    await client.acquireLease({ dataset_id: D1, node_uuid: B, expires: null });
    await client.releaseLease(D1);
    expect((await client.deleteDataset(D1)).deleted).toBe(true);
    expect((await client.deleteSnapshot(D3)).deleted).toBe(true);
    expect((await client.deleteSnapshot(snap.snapshot_id)).deleted).toBe(true);
  });
});
