/**
 * CreateVolume against another client creating the same name at once (HARD-U follow-up): the driver asks the control
 * service to keep the name unique (unique_name), so a namesake made between the driver's look and its create (the CLI,
 * the UI, an API user: any dataset id) is refused 409 DATASET_NAME_IN_USE instead of doubled, and CreateVolume answers
 * as it does for a name that exists: that volume when it fits the request, else ALREADY_EXISTS.
 */
import { type CreateDatasetRequest, type DatasetConfiguration, FlockerApiError, type NodeState } from '@flocker/api';
import { status } from '@grpc/grpc-js';
import type { ControlClient } from './CsiDriver';
import { addDataset, datasetsClient, fakeNode, quietDriver } from './csiTestSupport';
import { datasetIdForName, MiB } from './mapping';

const ME = '11111111-1111-4111-8111-111111111111';
const OTHER_ID = '99999999-9999-4999-8999-999999999999';
const CAP = { mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } };
const GiB = 1024 * MiB;

interface World {
  datasets: DatasetConfiguration[];
  nodes: NodeState[];
  /** Runs inside the driver's next createDataset, before the control service applies it (once). */
  race?: () => void;
}

/** Applies a create as the control service does: a taken id, then (when asked) a taken name, is 409. */
function apply(w: World, req: CreateDatasetRequest): DatasetConfiguration {
  const id = req.dataset_id ?? `${String(w.datasets.length).padStart(8, '0')}-0000-4000-8000-000000000000`;
  if (w.datasets.some((d) => d.dataset_id === id))
    throw new FlockerApiError(409, 'DATASET_ID_IN_USE', `The dataset id ${id} is already in use.`);
  const name = req.metadata?.name;
  const other = w.datasets.find((d) => !d.deleted && d.metadata.name === name);
  if (req.unique_name === true && other !== undefined)
    throw new FlockerApiError(409, 'DATASET_NAME_IN_USE', `The name is used by the dataset ${other.dataset_id}`);
  return addDataset(w.datasets, req, id);
}

function client(w: World): ControlClient {
  return datasetsClient(w, (req) => {
    const race = w.race;
    w.race = undefined;
    race?.();
    return apply(w, req);
  });
}

const world = (): World => ({ datasets: [], nodes: [fakeNode(ME, 'me')] });
const driver = (w: World) => quietDriver(client(w), ME, [], { mode: 'all', stageTimeoutMs: 1000, pollMs: 50 });
const create = (name: string, requiredBytes = GiB) => ({
  name,
  volume_capabilities: [CAP],
  capacity_range: { required_bytes: requiredBytes },
});
/** Another client's create of `name` (its own random id, as the CLI and UI make). */
const namesake =
  (w: World, name: string, size = GiB) =>
  () => {
    apply(w, { dataset_id: OTHER_ID, primary: ME, maximum_size: size, metadata: { name }, unique_name: true });
  };
const named = (w: World, name: string) => w.datasets.filter((d) => !d.deleted && d.metadata.name === name);

describe('CreateVolume racing another client of the same name', () => {
  it('answers with the namesake made meanwhile when it fits, and makes no second one', async () => {
    const w = world();
    w.race = namesake(w, 'a');
    const answer = await driver(w).createVolume(create('a'));
    expect(named(w, 'a').map((d) => d.dataset_id)).toEqual([OTHER_ID]);
    expect(answer).toMatchObject({ volume: { volume_id: OTHER_ID, capacity_bytes: GiB } });
  });

  it('is ALREADY_EXISTS when the namesake made meanwhile does not fit', async () => {
    const w = world();
    w.race = namesake(w, 'a', 64 * MiB);
    await expect(driver(w).createVolume(create('a', GiB))).rejects.toMatchObject({ code: status.ALREADY_EXISTS });
    expect(named(w, 'a').map((d) => d.dataset_id)).toEqual([OTHER_ID]);
  });

  it("when the name's id is held by a deleted dataset, the random-id create also keeps the name unique", async () => {
    const w = world();
    w.datasets.push({ dataset_id: datasetIdForName('a'), primary: ME, maximum_size: GiB, metadata: {}, deleted: true });
    const d = driver(w);
    // The first create is refused for its id; the namesake lands before the second.
    const realCreate = client(w).createDataset;
    let calls = 0;
    const racing = quietDriver(
      {
        ...client(w),
        createDataset: async (req: CreateDatasetRequest) => {
          if (++calls === 2) namesake(w, 'a')();
          return realCreate(req);
        },
      },
      ME,
      [],
      { mode: 'all', stageTimeoutMs: 1000, pollMs: 50 },
    );
    const answer = await racing.createVolume(create('a'));
    expect(calls).toBe(2);
    expect(named(w, 'a').map((x) => x.dataset_id)).toEqual([OTHER_ID]);
    expect(answer).toMatchObject({ volume: { volume_id: OTHER_ID } });
    // Without a race it still makes the volume (random id), once; again: the same volume.
    const again = await d.createVolume(create('b'));
    expect(await d.createVolume(create('b'))).toEqual(again);
    expect(named(w, 'b')).toHaveLength(1);
  });

  it('asks for unique_name on each create', async () => {
    const w = world();
    const seen: CreateDatasetRequest[] = [];
    const c = client(w);
    const d = quietDriver(
      {
        ...c,
        createDataset: async (req: CreateDatasetRequest) => {
          seen.push(req);
          return c.createDataset(req);
        },
      },
      ME,
      [],
      { mode: 'all', stageTimeoutMs: 1000, pollMs: 50 },
    );
    w.datasets.push({ dataset_id: datasetIdForName('a'), primary: ME, maximum_size: GiB, metadata: {}, deleted: true });
    await d.createVolume(create('a'));
    expect(seen.map((r) => r.unique_name)).toEqual([true, true]);
  });
});
