/**
 * The configuration_version rule (session 10, stale mounted) across a restart of the control service (file store,
 * session 11): the moves are noted in memory only, so the restarted service takes the loaded version as a load floor
 * (ControlState.floor): a node's report below it does not show the "mounted" of datasets it is primary of, so a report
 * built before the move back and received only after the restart is not shown mounted either. Before, the restarted
 * service showed that report's "mounted", at a path its node had unmounted. The stored bytes stay the previous
 * release's (docs/compatibility.md). Real control service (in-process) on a real data directory, restarted on it;
 * reports sent as the agents would.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { FlockerClient } from '@flocker/api';
import { decodeLog, LogRecord } from './ConfigurationLog';
import { CONFIGURATION_FILE, decodeConfiguration, encodeConfiguration, LOG_FILE } from './ConfigurationStore';
import { type ControlService, startControlService } from './server';
import {
  A,
  B,
  letterReport as report,
  mountedManifestation as mounted,
  PREVIOUS_RELEASE_LOG_OPS,
} from './testing/fixtures';
import { silentLogger, configurationVersionOf as version, stateInList as shown } from './testing/httpService';

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
  it('keeps the stale "mounted" hidden (with every "mounted" of its node below the floor); the report at the move back shows them', async () => {
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
    // The floor does not know which dataset moved: A's other "mounted" waits for A's report at the floor too.
    expect(await shown(c, other)).toBeUndefined();
    await c.reportNodeState(
      report(A, { manifestations: [mounted(id, A), mounted(other, A)], configuration_version: back }),
    );
    expect(await shown(c, id)).toEqual({
      dataset_id: id,
      primary: A,
      maximum_size: 1024 ** 3,
      path: `/flocker-a/${id}`,
    });
    expect(await shown(c, other)).toMatchObject({ primary: A, path: `/flocker-a/${other}` });
    expect(running().state.staleMounts().size).toBe(0);
    // Served configurations carry nothing new (clients and agents one release behind parse them strictly).
    const body = (await (await fetch(`${running().url}/v1/configuration/datasets`)).json()) as object[];
    expect(body.map((d) => Object.keys(d).sort())).toEqual((await c.listDatasets()).map((d) => Object.keys(d).sort()));
    expect(JSON.stringify(await c.waitForCluster(undefined, 0))).not.toMatch(/moved|primary_since/);
  });
});

it('after a restart an up-to-date node shows its "mounted" at once; a node reporting below the floor does not until it reports it', async () => {
  const c0 = await start();
  await c0.reportNodeState(report(A, { configuration_version: await version(c0) }));
  await c0.reportNodeState(report(B, { configuration_version: await version(c0) }));
  const onA = (await c0.createDataset({ primary: A, maximum_size: 1024 ** 3 })).dataset_id;
  const onB = (await c0.createDataset({ primary: B, maximum_size: 1024 ** 3 })).dataset_id;
  const stored = await version(c0);
  await stop();
  const restartedAt = performance.now();
  const c = await start();
  const startedMs = performance.now() - restartedAt;
  expect(await version(c)).toBe(stored);
  // A's agent had acted on the stored version: its first report after the restart carries it (Reporter: at once).
  await c.reportNodeState(report(A, { manifestations: [mounted(onA, A)], configuration_version: stored }));
  expect(await shown(c, onA)).toMatchObject({ primary: A, path: `/flocker-a/${onA}` });
  const shownMs = performance.now() - restartedAt;
  // B's agent still acts on an older version (a report built before the restart, or a slow action).
  await c.reportNodeState(report(B, { manifestations: [mounted(onB, B)], configuration_version: stored - 1 }));
  expect(await shown(c, onB)).toBeUndefined();
  // Its version-only report at the floor is a state change (whole-cluster waiters wake) and shows it.
  const generation = (await c.waitForCluster(undefined, 0)).generation;
  await c.reportNodeState(report(B, { manifestations: [mounted(onB, B)], configuration_version: stored }));
  expect((await c.waitForCluster(undefined, 0)).generation).not.toBe(generation);
  expect(await shown(c, onB)).toMatchObject({ primary: B, path: `/flocker-b/${onB}` });
  // Every known node reached the floor: it is dropped (staleMounts is O(1) again).
  expect(running().state.staleMounts().size).toBe(0);
  expect((running().state as unknown as { floor: unknown }).floor).toBeUndefined();
  // An agent without configuration_version (an older release) keeps the session-9 rule: shown.
  await c.reportNodeState({ ...report(B, { manifestations: [mounted(onB, B)] }) });
  expect(await shown(c, onB)).toMatchObject({ primary: B });
  // Indicative (shared host): restart to the up-to-date node's "mounted" shown, the start itself included.
  console.info(`restart: service up ${startedMs.toFixed(1)} ms, A's mounted shown ${shownMs.toFixed(1)} ms after`);
});

it('the stored bytes after moves are the previous release format: log records and snapshot document, no new op or field', async () => {
  const c = await start();
  const { id, back } = await moveAwayAndBack(c);
  await stop();
  // The log: every record is one of the previous release's ops, each dataset value the configuration served.
  const log = readFileSync(path.join(dir, LOG_FILE));
  const header = log.indexOf(10) + 1;
  const { records, tornBytes } = decodeLog(log, header, 0);
  expect(tornBytes).toBe(0);
  expect(records.at(-1)?.version).toBe(back);
  const lines = log.subarray(header).toString('utf8').trimEnd().split('\n');
  expect(lines).toHaveLength(records.length);
  for (const line of lines) {
    const record = LogRecord.parse(JSON.parse(line.slice(line.indexOf(' ') + 1)));
    expect(Object.keys(record).sort()).toEqual(['ops', 'version']);
    for (const op of record.ops) expect(PREVIOUS_RELEASE_LOG_OPS).toContain(op.op);
  }
  const moves = records.filter((r) => r.ops.some((o) => o.op === 'dataset' && o.value.primary === B));
  expect(moves).toHaveLength(1);
  expect(moves[0]?.ops.map((o) => o.op)).toEqual(['dataset']);
  // The snapshot document the log folds into (after one more move): the previous release's keys, its encoding.
  const folded = await start(1);
  await folded.updateDataset(id, { primary: B });
  await stop();
  const text = readFileSync(path.join(dir, CONFIGURATION_FILE), 'utf8');
  const doc = JSON.parse(text) as Record<string, unknown>;
  expect(Object.keys(doc).sort()).toEqual(['datasets', 'format_version', 'leases', 'nodes', 'version']);
  expect(encodeConfiguration(decodeConfiguration(doc))).toBe(text);
});
