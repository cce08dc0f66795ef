/**
 * The configuration_version rule (session 10, stale mounted) across a restart of the control service (file store,
 * session 11): the version at which a dataset's primary last changed is kept in the stored configuration, so a report
 * built before the move back and received only after the restart is not shown mounted either. Before, the moves were
 * noted in memory only: the restarted service showed that report's "mounted", at a path its node had unmounted.
 * Real control service (in-process) on a real data directory, restarted on it; reports sent as the agents would.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { configurationVersionOfTag, FlockerClient, type ManifestationState } from '@flocker/api';
import { CONFIGURATION_FILE } from './ConfigurationStore';
import { type ControlService, startControlService } from './server';
import { A, B, letterReport as report } from './testing/fixtures';
import { silentLogger } from './testing/httpService';

let dir = '';
let svc: ControlService | undefined;

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'flocker-stale-restart-'));
});

afterEach(async () => {
  await stop();
  rmSync(dir, { recursive: true, force: true });
});

async function stop(): Promise<void> {
  const s = svc;
  svc = undefined;
  await s?.close();
}

/** The running service (a test's own start). */
function running(): ControlService {
  if (svc === undefined) throw new Error('not started');
  return svc;
}

/** (Re)starts the service on `dir`; compactLogBytes 1 folds the log into the snapshot after every commit. */
async function start(compactLogBytes?: number): Promise<FlockerClient> {
  svc = await startControlService({
    port: 0,
    host: '127.0.0.1',
    dataDir: dir,
    logger: silentLogger,
    ...(compactLogBytes !== undefined ? { compactLogBytes } : {}),
  });
  return new FlockerClient({ baseUrl: svc.url, timeoutMs: 5000 });
}

const mounted = (id: string, node: string): ManifestationState => ({
  dataset_id: id,
  blockdevice_id: `bd-${id}`,
  size: 1024 ** 3,
  status: 'mounted',
  path: `/flocker-${node.slice(0, 1)}/${id}`,
});

const version = async (c: FlockerClient) =>
  configurationVersionOfTag((await c.waitForCluster(undefined, 0)).configuration_tag) ?? Number.NaN;
const shown = async (c: FlockerClient, id: string) => (await c.listDatasetState()).find((s) => s.dataset_id === id);

/** A dataset on A, moved to B (B mounts it) and straight back; A's report built at the move away is still to come. */
async function moveAwayAndBack(c: FlockerClient) {
  await c.reportNodeState(report(A, { configuration_version: await version(c) }));
  await c.reportNodeState(report(B, { configuration_version: await version(c) }));
  const id = (await c.createDataset({ primary: A, maximum_size: 1024 ** 3 })).dataset_id;
  const other = (await c.createDataset({ primary: A, maximum_size: 1024 ** 3 })).dataset_id;
  await c.reportNodeState(
    report(A, { manifestations: [mounted(id, A), mounted(other, A)], configuration_version: await version(c) }),
  );
  await c.updateDataset(id, { primary: B });
  const away = await version(c);
  await c.reportNodeState(report(B, { manifestations: [mounted(id, B)], configuration_version: away }));
  await c.updateDataset(id, { primary: A });
  const back = await version(c);
  const inFlight = report(A, { manifestations: [mounted(id, A), mounted(other, A)], configuration_version: away });
  return { id, other, away, back, inFlight };
}

describe.each([
  ['the log replayed', undefined],
  ['the snapshot the log was folded into', 1],
])('a restart between a move back and the old report (%s)', (_what, compactLogBytes) => {
  it('keeps the stale "mounted" hidden; the report at the move back shows it', async () => {
    const before = await start(compactLogBytes);
    const { id, other, back, inFlight } = await moveAwayAndBack(before);
    await stop();
    const c = await start(compactLogBytes);
    // Versions continue from the stored one: comparable with those agents report from before the restart.
    expect(await version(c)).toBe(back);
    // B unmounted and reported at the move back; A's report built at the move away arrives only now.
    await c.reportNodeState(report(B, { configuration_version: back }));
    await c.reportNodeState(inFlight);
    // Before (moves noted in memory only): { primary: A, path: '/flocker-a/<id>' }, a path A has unmounted.
    expect(await shown(c, id)).toBeUndefined();
    expect(await shown(c, other)).toMatchObject({ primary: A, path: `/flocker-a/${other}` });
    await c.reportNodeState(
      report(A, { manifestations: [mounted(id, A), mounted(other, A)], configuration_version: back }),
    );
    expect(await shown(c, id)).toEqual({
      dataset_id: id,
      primary: A,
      maximum_size: 1024 ** 3,
      path: `/flocker-a/${id}`,
    });
    expect(running().state.staleMounts().size).toBe(0);
    // Served configurations carry nothing new (clients and agents one release behind parse them strictly).
    const body = (await (await fetch(`${running().url}/v1/configuration/datasets`)).json()) as object[];
    expect(body.map((d) => Object.keys(d).sort())).toEqual((await c.listDatasets()).map((d) => Object.keys(d).sort()));
    expect(JSON.stringify(await c.waitForCluster(undefined, 0))).not.toMatch(/moved|primary_since/);
  });
});

it('a configuration stored without the move versions (an older release) loads; moves from then on are kept', async () => {
  const c0 = await start(1);
  await c0.reportNodeState(report(A, { configuration_version: await version(c0) }));
  await c0.reportNodeState(report(B, { configuration_version: await version(c0) }));
  const id = (await c0.createDataset({ primary: A, maximum_size: 1024 ** 3 })).dataset_id;
  await stop();
  // What the previous release wrote: no key beyond its own (a configuration with no move stores none either).
  const file = path.join(dir, CONFIGURATION_FILE);
  const doc = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  expect(Object.keys(doc).sort()).toEqual(['datasets', 'format_version', 'leases', 'nodes', 'version']);
  writeFileSync(file, JSON.stringify(doc));
  const c = await start(1);
  expect((await c.listDatasets()).map((d) => d.primary)).toEqual([A]);
  await c.updateDataset(id, { primary: B });
  const away = await version(c);
  await c.updateDataset(id, { primary: A });
  const back = await version(c);
  await stop();
  const again = await start(1);
  await again.reportNodeState(report(B, { configuration_version: back }));
  await again.reportNodeState(report(A, { manifestations: [mounted(id, A)], configuration_version: away }));
  expect(await shown(again, id)).toBeUndefined();
  await again.reportNodeState(report(A, { manifestations: [mounted(id, A)], configuration_version: back }));
  expect(await shown(again, id)).toMatchObject({ primary: A, path: `/flocker-a/${id}` });
});
