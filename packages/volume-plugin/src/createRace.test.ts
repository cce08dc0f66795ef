/**
 * Session 21's "documented window" (seen once by FX-UUID): Create looks the name up (in the followed snapshot, or
 * afresh), then POSTs; an API user's create of the same name landing in between (a random id: `flocker volumes
 * create`, the web UI, a v1 client) was not seen, and the plugin's create under the name-based id went through too:
 * two datasets of one name. Create now asks the control service for a name no live dataset has (unique_name), whose
 * check and create are one change: the plugin finds the API user's volume instead. The API user's create here is
 * made from inside the plugin's client, just before its POST, so the race is taken every time.
 */
import { type CreateDatasetRequest, type DatasetConfiguration, FlockerClient, type WriteOptions } from '@flocker/api';
import type { FlockerVolumeBackend } from './FlockerVolumeBackend';
import { BackendTestBed, GiB, HOST_A, NODE_A } from './testing';
import { volumeDatasetId } from './volumeOptions';

/** A client that runs `before` (once) ahead of its next createDataset's POST. */
class RacedClient extends FlockerClient {
  before: (() => Promise<void>) | undefined;
  override async createDataset(req: CreateDatasetRequest, options?: WriteOptions): Promise<DatasetConfiguration> {
    const before = this.before;
    this.before = undefined;
    if (before !== undefined) await before();
    return super.createDataset(req, options);
  }
}

describe("Create racing an API user's create of the same name", () => {
  let bed: BackendTestBed;
  let raced: RacedClient;
  let a: FlockerVolumeBackend;

  beforeEach(async () => {
    bed = await BackendTestBed.start('flocker-createrace-', [HOST_A]);
    raced = new RacedClient({ baseUrl: bed.control.url });
    a = await bed.backend(NODE_A, { client: raced });
  });
  afterEach(() => bed.close());

  /** The API user's create, as `flocker volumes create db` of a release without the opt-in makes it. */
  const apiUserCreates = async (): Promise<DatasetConfiguration> =>
    bed.client.createDataset({ primary: NODE_A, maximum_size: GiB, metadata: { name: 'db' } });

  const liveNamed = async (name: string) =>
    (await bed.client.listDatasets()).filter((d) => !d.deleted && d.metadata['name'] === name);

  it("between the lookup and the POST: one dataset, the API user's, which Get and Mount then answer", async () => {
    let made: DatasetConfiguration | undefined;
    raced.before = async () => {
      made = await apiUserCreates();
    };
    await a.create({ Name: 'db', Opts: {} });
    expect(made).toBeDefined();
    expect((await liveNamed('db')).map((d) => d.dataset_id)).toEqual([made?.dataset_id]);
    expect((await a.get({ Name: 'db' })).Volume.Name).toBe('db');
    const m = await a.mount({ Name: 'db', ID: 'c1' });
    expect(m.Mountpoint).toBe(`/flocker-a/${made?.dataset_id}`);
    await a.unmount({ Name: 'db', ID: 'c1' });
    await a.settled();
  });

  it("the name-based id held by a deleted volume of the name: the random-id create finds the API user's too", async () => {
    // A volume "db" made and removed: its name-based id stays with the deleted dataset.
    await a.create({ Name: 'db', Opts: {} });
    await a.remove({ Name: 'db' });
    expect((await bed.client.getDataset(volumeDatasetId('db'))).deleted).toBe(true);
    let made: DatasetConfiguration | undefined;
    // The first POST (the name-based id) is refused as taken; the API user's create lands before the second.
    raced.before = async () => {
      raced.before = async () => {
        made = await apiUserCreates();
      };
    };
    await a.create({ Name: 'db', Opts: {} });
    expect(made).toBeDefined();
    expect((await liveNamed('db')).map((d) => d.dataset_id)).toEqual([made?.dataset_id]);
  });
});
