/** DatasetWorker alone: one dataset's steps, on the fakes and the manual clock (no loop, no control service). */
import type { ClusterSnapshot } from '@flocker/api';
import { Writable } from 'node:stream';
import winston from 'winston';
import { DatasetWorker } from './DatasetWorker';
import { FailureLog } from './FailureLog';
import { countListings, FakeDriver, FakeHost } from './testing/fakes';
import { ObservationView } from './ObservationView';
import { PoolKnowledge } from './PoolKnowledge';
import { ManualClock } from '@flocker/runtime/testing';

const ME = '11111111-1111-4111-8111-111111111111';
const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const MiB = 1024 * 1024;

function setup(o: { mayAct?: boolean; name?: string } = {}) {
  const clock = new ManualClock();
  const logged: Array<Record<string, unknown>> = [];
  const logger = winston.createLogger({
    level: 'debug',
    transports: [
      new winston.transports.Stream({
        stream: new Writable({
          write(chunk: Buffer, _enc, done) {
            logged.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
            done();
          },
        }),
      }),
    ],
    format: winston.format.json(),
  });
  const driver = new FakeDriver();
  const host = new FakeHost();
  const listings = countListings(driver);
  let snapshot: ClusterSnapshot | null = {
    generation: '1',
    configuration_tag: 't',
    datasets: [
      {
        dataset_id: DS,
        primary: ME,
        maximum_size: 64 * MiB,
        metadata: o.name !== undefined ? { name: o.name } : {},
        deleted: false,
      },
    ],
    leases: [],
    nodes: [],
  };
  const view = new ObservationView();
  const failures = new FailureLog({ clock, logger, backoffInitialMs: 100, backoffMaxMs: 1000 });
  const reports: string[] = [];
  let missed = 0;
  const worker = new DatasetWorker({
    driver,
    hostOps: host,
    instanceId: 'i-me',
    logger,
    clock,
    decision: { nodeUuid: ME, mountRoot: '/flocker', defaultSize: 64 * MiB, allocationUnit: MiB, canResize: false },
    view,
    pool: new PoolKnowledge(driver, clock, () => snapshot),
    failures,
    fencing: { mayAct: () => o.mayAct ?? true, phase: o.mayAct === false ? 'fenced' : 'inContact' },
    reporter: { request: () => reports.push('now'), requestProgress: () => reports.push('progress') },
    snapshot: () => snapshot,
    stopping: () => false,
    missed: () => missed++,
  });
  return {
    clock,
    driver,
    host,
    view,
    failures,
    reports,
    worker,
    listings,
    missed: () => missed,
    logged,
    forget: () => (snapshot = { ...snapshot!, datasets: [] }),
  };
}

describe('DatasetWorker', () => {
  it('takes a new dataset to mounted, looking only where a step does not tell all (stateAfter); the steps between reported as progress (debounced), the mount and the end at once', async () => {
    const { driver, host, view, reports, worker, listings } = setup();
    await worker.converge(DS);
    expect(host.mounts.map((m) => m.mountPoint)).toEqual([`/flocker/${DS}`]);
    expect(view.volumesOf(DS)[0]).toMatchObject({ attachedTo: 'i-me', mountPoints: [`/flocker/${DS}`] });
    expect(driver.volumes.size).toBe(1);
    // The first look, the create's own re-check of the pool, the look after the mount.
    expect(listings()).toBe(3);
    // create, attach, format, mount: progress (the Reporter debounces it); the mount (reportMounted) and the end: at once.
    expect(reports).toEqual(['progress', 'progress', 'progress', 'progress', 'now', 'now']);
  });

  it('acts on nothing without confirmed contact: a full look is wanted once idle, and a report', async () => {
    const { driver, reports, worker, missed } = setup({ mayAct: false });
    await worker.converge(DS);
    expect(driver.volumes.size).toBe(0);
    expect(missed()).toBe(1);
    expect(reports).toEqual(['now']);
  });

  it('a failed step is recorded for backoff; during the backoff the dataset is only reported', async () => {
    const { clock, host, failures, reports, worker, missed } = setup();
    host.failMounts = 1;
    await worker.converge(DS);
    expect(failures.reportErrors()).toEqual([
      expect.objectContaining({ dataset_id: DS, action: 'mount', attempts: 1 }),
    ]);
    expect(failures.retryAt(DS)).toBe(clock.now() + 100);
    expect(missed()).toBe(1);
    reports.length = 0;
    await worker.converge(DS);
    expect(reports).toEqual(['now']);
    expect(host.mounts).toEqual([]);
    await clock.advance(100);
    await worker.converge(DS);
    expect(host.mounts).toHaveLength(1);
    expect(failures.reportErrors()).toEqual([]);
  });

  it('logs each step and failure with the volume name beside the dataset id (issue 21: agent.log named volumes only by UUID)', async () => {
    const { host, worker, logged } = setup({ name: 'pgdata' });
    host.failMounts = 1;
    await worker.converge(DS);
    const done = logged.filter((l) => l['message'] === 'action done');
    expect(done.map((l) => [l['volume'], l['kind'], l['datasetId']])).toEqual([
      ['pgdata', 'create', DS],
      ['pgdata', 'attach', DS],
      ['pgdata', 'format', DS],
    ]);
    expect(logged.find((l) => l['message'] === 'action failed')).toMatchObject({
      volume: 'pgdata',
      kind: 'mount',
      datasetId: DS,
    });
  });

  it('a dataset no longer in the configuration: nothing to do', async () => {
    const { driver, reports, worker, forget } = setup();
    forget();
    await worker.converge(DS);
    expect(driver.volumes.size).toBe(0);
    expect(reports).toEqual([]);
  });
});
