/** DatasetWorker alone: one dataset's steps, on the fakes and the manual clock (no loop, no control service). */
import type { ClusterSnapshot } from '@flocker/api';
import { Writable } from 'node:stream';
import winston from 'winston';
import { DatasetWorker, endReport, holdingsHere, poolAfter } from './DatasetWorker';
import { FailureLog } from './FailureLog';
import { countListings, FakeDriver, FakeHost } from './testing/fakes';
import { ObservationView } from './ObservationView';
import { PoolKnowledge } from './PoolKnowledge';
import { ManualClock } from '@flocker/runtime/testing';

const ME = '11111111-1111-4111-8111-111111111111';
const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const MiB = 1024 * 1024;
const OTHER = '22222222-2222-4222-8222-222222222222';

function setup(o: { mayAct?: boolean; name?: string; primary?: string } = {}) {
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
        primary: o.primary ?? ME,
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
  /** Every call on the fakes and to the reporter, in order (see trace()). */
  const events: string[] = [];
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
    reporter: {
      request: () => {
        reports.push('now');
        events.push(`report (view: attached to ${String(view.volumesOf(DS)[0]?.attachedTo)})`);
      },
      requestProgress: () => reports.push('progress'),
    },
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
    events,
    forget: () => (snapshot = { ...snapshot!, datasets: [] }),
    /** A new configuration with the dataset's primary on `node`. */
    moveTo: (node: string) =>
      (snapshot = {
        ...snapshot!,
        generation: `${Number(snapshot!.generation) + 1}`,
        datasets: snapshot!.datasets.map((d) => ({ ...d, primary: node })),
      }),
    /** Records the pool listings, probes, storage and mount calls in `events`. */
    trace: () => {
      const list = driver.listVolumes.bind(driver);
      driver.listVolumes = async () => (events.push('list the pool'), list());
      const probe = host.hasFilesystem.bind(host);
      host.hasFilesystem = async (d) => (events.push(`probe ${d}`), probe(d));
      const attach = driver.attachVolume.bind(driver);
      driver.attachVolume = async (id, i) => (events.push(`attach ${id}`), attach(id, i));
      const detach = driver.detachVolume.bind(driver);
      driver.detachVolume = async (id, options) => (events.push(`detach ${id}`), detach(id, options));
      const mount = host.mount.bind(host);
      host.mount = async (d, m) => (events.push(`mount ${m}`), mount(d, m));
      const unmount = host.unmount.bind(host);
      host.unmount = async (m) => (events.push(`unmount ${m}`), unmount(m));
    },
  };
}

/** The volume 'vol-1' of DS, formatted, attached here and mounted at its path (or at `mountPoints`). */
function heldHere(f: ReturnType<typeof setup>, mountPoints = [`/flocker/${DS}`]): void {
  f.driver.volumes.set('vol-1', { blockdeviceId: 'vol-1', datasetId: DS, size: 64 * MiB, attachedTo: 'i-me' });
  f.host.formatted.add('/dev/fake/vol-1');
  f.host.mounts = mountPoints.map((mountPoint) => ({ device: '/dev/fake/vol-1', mountPoint, majorMinor: '0:0' }));
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
    // create, attach, format, mount: progress (the Reporter debounces it); the mount (reportMounted): at once; the
    // end, whose look found it as reported: progress (endReport).
    expect(reports).toEqual(['progress', 'progress', 'progress', 'progress', 'now', 'progress']);
  });

  it('decides on a configuration that arrived during its look, with that look: a move away arriving while it confirms the move here goes on at once (issue 23)', async () => {
    const f = setup();
    heldHere(f);
    f.trace();
    const list = f.driver.listVolumes.bind(f.driver);
    let arrived = false;
    // The move away is committed while the worker lists the pool for its look.
    f.driver.listVolumes = async () => {
      const volumes = await list();
      if (!arrived) {
        arrived = true;
        f.moveTo(OTHER);
      }
      return volumes;
    };
    await f.worker.converge(DS);
    // Before: the look's decision was made on the configuration from before it (nothing to do): the worker ended
    // with the volume mounted here, and the move away waited for the agent's full look.
    expect(f.events.filter((e) => !e.startsWith('report'))).toEqual([
      'list the pool',
      `unmount /flocker/${DS}`,
      `detach vol-1`,
      'list the pool',
    ]);
    expect(f.host.mounts).toEqual([]);
    expect(f.driver.volumes.get('vol-1')?.attachedTo).toBeNull();
  });

  it('a dataset dropped from the configuration during its look ends the worker without a step', async () => {
    const f = setup();
    heldHere(f);
    f.trace();
    const list = f.driver.listVolumes.bind(f.driver);
    f.driver.listVolumes = async () => {
      const volumes = await list();
      f.forget();
      return volumes;
    };
    await f.worker.converge(DS);
    expect(f.events).toEqual(['list the pool']);
    expect(f.host.mounts.map((m) => m.mountPoint)).toEqual([`/flocker/${DS}`]);
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

  it('a move away: the detach is decided on a look of the device (mounted nowhere here) without listing the pool or probing its file system (seen mounted by the look before), and the release is reported at once, before the look that confirms it (the end: progress)', async () => {
    const f = setup({ primary: OTHER });
    heldHere(f);
    f.trace();
    await f.worker.converge(DS);
    expect(f.events).toEqual([
      'list the pool',
      `unmount /flocker/${DS}`,
      // The look after the unmount: no listing (the unmount changed no record), and no probe of the file system
      // the first look saw mounted (DatasetWorker.formatted); the mounts are read as ever.
      'detach vol-1',
      'report (view: attached to null)',
      'list the pool',
    ]);
    expect(f.driver.volumes.get('vol-1')?.attachedTo).toBeNull();
    expect(f.reports.slice(-2)).toEqual(['now', 'progress']);
  });

  it('a move away whose new holder attached the volume before the look after the detach: that attach is not reported at once (it is the new holder’s to report)', async () => {
    const f = setup({ primary: OTHER });
    heldHere(f);
    const detach = f.driver.detachVolume.bind(f.driver);
    f.driver.detachVolume = async (id, options) => {
      await detach(id, options);
      f.driver.volumes.set(id, { ...f.driver.volumes.get(id)!, attachedTo: 'i-other' });
    };
    await f.worker.converge(DS);
    expect(f.view.volumesOf(DS)[0]?.attachedTo).toBe('i-other');
    expect(f.reports.slice(-2)).toEqual(['now', 'progress']);
  });

  it('a move away: the look after an unmount still finds the device mounted here at another path: unmounted too, detached only then', async () => {
    const f = setup({ primary: OTHER });
    heldHere(f, [`/flocker/${DS}`, '/elsewhere']);
    f.trace();
    await f.worker.converge(DS);
    expect(f.events.filter((e) => !e.startsWith('report') && !e.startsWith('probe'))).toEqual([
      'list the pool',
      'unmount /elsewhere',
      `unmount /flocker/${DS}`,
      'detach vol-1',
      'list the pool',
    ]);
  });

  it('an arrival: the mount is decided on a look that probes the attached device without listing the pool', async () => {
    const f = setup();
    heldHere(f, []);
    f.driver.volumes.set('vol-1', { ...f.driver.volumes.get('vol-1')!, attachedTo: null });
    f.trace();
    await f.worker.converge(DS);
    expect(f.events).toEqual([
      'list the pool',
      'attach vol-1',
      'probe /dev/fake/vol-1',
      `mount /flocker/${DS}`,
      'report (view: attached to i-me)',
      'list the pool',
    ]);
    expect(f.reports.slice(-2)).toEqual(['now', 'progress']);
  });

  it('an arrival whose volume another node took meanwhile: the attach fails and is backed off, nothing mounted', async () => {
    const f = setup();
    heldHere(f, []);
    f.driver.volumes.set('vol-1', { ...f.driver.volumes.get('vol-1')!, attachedTo: null });
    const list = f.driver.listVolumes.bind(f.driver);
    f.driver.listVolumes = async () => {
      const seen = await list();
      f.driver.volumes.set('vol-1', { ...f.driver.volumes.get('vol-1')!, attachedTo: 'i-other' });
      return seen;
    };
    await f.worker.converge(DS);
    expect(f.host.mounts).toEqual([]);
    expect(f.failures.reportErrors()).toEqual([
      expect.objectContaining({ action: 'attach', code: 'ALREADY_ATTACHED' }),
    ]);
  });
});

describe('poolAfter', () => {
  const seen = {
    instanceId: 'i-me',
    volumes: [
      {
        blockdeviceId: 'vol-1',
        datasetId: DS,
        size: MiB,
        attachedTo: 'i-me',
        devicePath: '/dev/x',
        hasFilesystem: true,
        mountPoints: ['/m'],
      },
      { blockdeviceId: 'vol-2', datasetId: 'other', size: MiB, attachedTo: null },
    ],
  };
  const unattached = { ...seen, volumes: [{ blockdeviceId: 'vol-1', datasetId: DS, size: MiB, attachedTo: null }] };

  it('after an unmount: the dataset’s volumes as listed before it, without device details', () => {
    expect(
      poolAfter(seen, { kind: 'unmount', datasetId: DS, blockdeviceId: 'vol-1', mountPath: '/m' }, 'i-me'),
    ).toEqual([{ blockdeviceId: 'vol-1', datasetId: DS, size: MiB, attachedTo: 'i-me' }]);
  });

  it('after an attach: the volume attached here', () => {
    expect(poolAfter(unattached, { kind: 'attach', datasetId: DS, blockdeviceId: 'vol-1' }, 'i-me')).toEqual([
      { blockdeviceId: 'vol-1', datasetId: DS, size: MiB, attachedTo: 'i-me' },
    ]);
  });

  it('anything else, or a volume the look before did not show: undefined (the pool is listed)', () => {
    expect(poolAfter(seen, { kind: 'detach', datasetId: DS, blockdeviceId: 'vol-1' }, 'i-me')).toBeUndefined();
    expect(
      poolAfter(
        seen,
        { kind: 'mount', datasetId: DS, blockdeviceId: 'vol-1', devicePath: '/dev/x', mountPath: '/m', size: MiB },
        'i-me',
      ),
    ).toBeUndefined();
    expect(poolAfter(unattached, { kind: 'attach', datasetId: DS, blockdeviceId: 'vol-9' }, 'i-me')).toBeUndefined();
  });
});

describe('endReport', () => {
  const vol = (id: string, attachedTo: string | null, mountPoints?: string[]) => ({
    blockdeviceId: id,
    datasetId: DS,
    size: MiB,
    attachedTo,
    ...(mountPoints !== undefined ? { mountPoints } : {}),
  });
  const path = `/flocker/${DS}`;
  const key = (...vs: Array<ReturnType<typeof vol>>) => holdingsHere(vs, 'i-me', path);

  it('holdingsHere: only what is attached here and whether it is mounted at the dataset’s path counts', () => {
    expect(key(vol('v', null))).toBe(key(vol('v', 'i-other')));
    expect(key(vol('v', null))).toBe(key());
    expect(key(vol('v', 'i-me', [path]))).toBe(key(vol('v', 'i-me', [path, '/elsewhere']), vol('w', 'i-other')));
    expect(key(vol('v', 'i-me', [path]))).not.toBe(key(vol('v', 'i-me', [])));
    expect(key(vol('v', 'i-me'))).not.toBe(key());
    expect(key(vol('v', 'i-me'), vol('w', 'i-me'))).toBe(key(vol('w', 'i-me'), vol('v', 'i-me')));
  });

  it('progress only when the last step was reported at once and the look found the same here', () => {
    expect(endReport(undefined, key())).toBe('now');
    expect(endReport(key(), key(vol('v', 'i-other')))).toBe('progress');
    expect(endReport(key(), key(vol('v', 'i-me')))).toBe('now');
    expect(endReport(key(vol('v', 'i-me', [path])), key(vol('v', 'i-me', [path])))).toBe('progress');
    expect(endReport(key(vol('v', 'i-me', [path])), key(vol('v', 'i-me', [])))).toBe('now');
  });
});
