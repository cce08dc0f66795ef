/**
 * Review TN F1 (session 21): a volume named like another volume's dataset id made `flocker volumes destroy <id>`
 * ambiguous. Create refuses a UUID-shaped name for a new volume (newVolumeNameProblem, as the CLI and UI do); an
 * existing volume of such a name (made before the rule) stays usable: its repeated Create (Docker's on every
 * `docker run -v name:`), Get, Mount, Path, List, Remove and clone-of. Since session 22 the control service refuses
 * such a new name from every client (names.ts in control-api), so the plugin's refusal is only its clear message.
 */
import * as path from 'node:path';
import type * as http from 'node:http';
import type { FlockerClient } from '@flocker/api';
import { MemoryConfigurationStore } from '@flocker/control-api';
import type { FlockerVolumeBackend } from './FlockerVolumeBackend';
import { createPluginHttpServer, listenOnUnixSocket } from './PluginHttpServer';
import { BackendTestBed, GiB, HOST_A, NODE_A, callPlugin, silentLogger } from './testing';
import { validateNewVolumeName, validateVolumeName } from './volumeOptions';

const UUID_NAME = 'c6fcd4ab-6141-509f-95da-52a54a496abe';
const ID_SHAPED = /is shaped like a volume id.*Choose another name/;

/** Waits for `condition` (polled; a generous deadline for a loaded machine). */
async function until(condition: () => Promise<boolean>, deadlineMs = 20_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('validateNewVolumeName', () => {
  it("refuses a UUID-shaped name (any case) that validateVolumeName, the lookups' rule, accepts", () => {
    for (const name of [UUID_NAME, UUID_NAME.toUpperCase()]) {
      expect(() => validateVolumeName(name)).not.toThrow();
      expect(() => validateNewVolumeName(name)).toThrow(
        expect.objectContaining({ code: 'INVALID_NAME', message: expect.stringMatching(ID_SHAPED) }),
      );
    }
    expect(() => validateNewVolumeName('-bad')).toThrow(expect.objectContaining({ code: 'INVALID_NAME' }));
    expect(() => validateNewVolumeName(`db-${UUID_NAME}`)).not.toThrow();
  });
});

describe('Create and UUID-shaped volume names (review TN F1)', () => {
  let bed: BackendTestBed;
  let client: FlockerClient;
  let a: FlockerVolumeBackend;

  beforeEach(async () => {
    bed = await BackendTestBed.start('flocker-uuidname-', [HOST_A]);
    ({ client } = bed);
    a = await bed.backend(NODE_A);
  });

  afterEach(() => bed.close());

  it.each([UUID_NAME, UUID_NAME.toUpperCase()])(
    'a new volume named %p is refused and nothing is made',
    async (name) => {
      await expect(a.create({ Name: name, Opts: {} })).rejects.toMatchObject({
        code: 'INVALID_NAME',
        message: expect.stringMatching(ID_SHAPED),
      });
      await expect(a.create({ Name: name, Opts: { size: '128M' } })).rejects.toMatchObject({ code: 'INVALID_NAME' });
      expect(await client.listDatasets()).toEqual([]);
      expect((await a.list()).Volumes).toEqual([]);
    },
  );

  it("Docker sees the refusal as the plugin's usual {Err} with the reason", async () => {
    const socketPath = path.join(bed.dir, 'flocker.sock');
    const server: http.Server = createPluginHttpServer(a, silentLogger);
    await listenOnUnixSocket(server, { socketPath });
    try {
      const reply = await callPlugin(socketPath, '/VolumeDriver.Create', { Name: UUID_NAME, Opts: {} });
      expect(reply.body).toEqual({ Err: expect.stringMatching(ID_SHAPED) });
      expect(reply.status).toBeGreaterThanOrEqual(400);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
    expect(await client.listDatasets()).toEqual([]);
  });

  it('names that only look a little like ids are still new volume names', async () => {
    for (const name of [`${UUID_NAME}-2`, UUID_NAME.slice(0, 8), UUID_NAME.replace(/-/g, '')])
      await a.create({ Name: name, Opts: {} });
    expect(await client.listDatasets()).toHaveLength(3);
  });

  it('an API user cannot make one either: the control service refuses it in the same words (session 22)', async () => {
    await expect(
      client.createDataset({ primary: NODE_A, maximum_size: GiB, metadata: { name: UUID_NAME } }),
    ).rejects.toMatchObject({
      status: 400,
      code: 'NAME_SHAPED_LIKE_ID',
      description: expect.stringMatching(ID_SHAPED),
    });
    expect(await client.listDatasets()).toEqual([]);
  });
});

describe('a UUID-named volume made before the rule (review TN F1)', () => {
  let bed: BackendTestBed;
  let client: FlockerClient;
  let a: FlockerVolumeBackend;
  const made = { dataset_id: 'dddddddd-dddd-4ddd-8ddd-dddddddddddd' };

  beforeEach(async () => {
    // The control service's store holds it: no release makes one any more.
    const store = new MemoryConfigurationStore();
    store.committed = {
      version: 1,
      datasets: new Map([
        [
          made.dataset_id,
          { ...made, primary: NODE_A, maximum_size: GiB, metadata: { name: UUID_NAME }, deleted: false },
        ],
      ]),
      leases: new Map(),
      nodes: new Map([[NODE_A, { uuid: NODE_A, host: HOST_A.host }]]),
    };
    bed = await BackendTestBed.start('flocker-uuidname-old-', [HOST_A], store);
    ({ client } = bed);
    a = await bed.backend(NODE_A);
  });

  afterEach(() => bed.close());

  it("stays usable: Docker's repeated Create, Get, Mount, Path, List, clone-of, Remove", async () => {
    await until(async () => (await a.list()).Volumes.some((v) => v.Name === UUID_NAME));
    // Docker's Create again on every `docker run -v <name>:`.
    await a.create({ Name: UUID_NAME, Opts: {} });
    await a.create({ Name: UUID_NAME, Opts: { size: '2G' } });
    const datasets = await client.listDatasets();
    expect(datasets).toEqual([expect.objectContaining({ dataset_id: made.dataset_id, maximum_size: 2 * GiB })]);

    expect((await a.get({ Name: UUID_NAME })).Volume.Name).toBe(UUID_NAME);
    const m = await a.mount({ Name: UUID_NAME, ID: 'c1' });
    expect(m.Mountpoint).toBe(`/flocker-a/${made.dataset_id}`);
    expect(await a.path({ Name: UUID_NAME })).toEqual({ Mountpoint: m.Mountpoint });
    expect((await a.list()).Volumes).toEqual([expect.objectContaining({ Name: UUID_NAME })]);
    await a.unmount({ Name: UUID_NAME, ID: 'c1' });
    await a.settled();

    await a.create({ Name: 'copy', Opts: { 'clone-of': UUID_NAME } });
    // A clone's own name follows the new-name rule, whatever its source is called.
    await expect(
      a.create({ Name: UUID_NAME.replace('c6', 'd7'), Opts: { 'clone-of': UUID_NAME } }),
    ).rejects.toMatchObject({ code: 'INVALID_NAME', message: expect.stringMatching(ID_SHAPED) });
    expect((await client.listDatasets()).map((d) => d.metadata.name).sort()).toEqual([UUID_NAME, 'copy']);

    await a.remove({ Name: UUID_NAME });
    // Gone, the name is a new volume's again: refused.
    await expect(a.create({ Name: UUID_NAME, Opts: {} })).rejects.toMatchObject({ code: 'INVALID_NAME' });
    expect((await client.listDatasets()).filter((d) => d.deleted !== true).map((d) => d.metadata.name)).toEqual([
      'copy',
    ]);
  });
});
