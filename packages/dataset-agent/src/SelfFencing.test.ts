import { Writable } from 'node:stream';
import type { ClusterSnapshot } from '@flocker/api';
import winston from 'winston';
import type { HostMount } from './HostOps';
import { SelfFencing } from './SelfFencing';
import { nodeState } from './testing/fakes';
import { ManualClock, settle } from '@flocker/runtime/testing';

const ME = '11111111-1111-4111-8111-111111111111';
const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
// T = 3 s: bound F = 1.5 s, heartbeat every 500 ms, last chance (T - F)/3 = 500 ms.
const T_MS = 3000;

function snapshot(tag: string, alive = true): ClusterSnapshot {
  return {
    generation: '1',
    configuration_tag: tag,
    datasets: [],
    leases: [],
    nodes: [nodeState(ME, { host: 'a', instance_id: 'i-me', alive })],
    node_timeout_seconds: T_MS / 1000,
  };
}

function setup(o: { nodeTimeoutMs?: number; releaseFenced?: () => Promise<unknown> } = {}) {
  const clock = new ManualClock();
  const log: string[] = [];
  let mounts: HostMount[] = [
    { device: '/dev/loop1', mountPoint: `/flocker/${DS}`, majorMinor: '7:1' },
    { device: '/dev/sda1', mountPoint: '/elsewhere', majorMinor: '8:1' },
  ];
  let answerLastChance: ((answer: unknown) => void) | undefined;
  let tag = 't1';
  const fencing = new SelfFencing(
    {
      nodeUuid: ME,
      clock,
      logger: winston.createLogger({ silent: true }),
      mountRoot: '/flocker/',
      resyncIntervalMs: 10_000,
      hostOps: {
        listMounts: async () => mounts,
        unmount: async (path) => {
          log.push(`unmount ${path}`);
          mounts = mounts.filter((m) => m.mountPoint !== path);
        },
      },
      containers: {
        stopContainersUsing: async (targets) => {
          log.push(`stop ${targets.paths.join(',')} ${targets.volumes.join(',')}`);
          return ['writer'];
        },
      },
      ...(o.nodeTimeoutMs !== undefined ? { lastNodeTimeoutMs: o.nodeTimeoutMs } : {}),
      ...(o.releaseFenced !== undefined ? { releaseFenced: o.releaseFenced } : {}),
    },
    {
      stopTargets: (paths) => ({ paths, volumes: ['pg'] }),
      sendReportNow: () => {
        log.push('last chance');
        return new Promise((resolve) => (answerLastChance = resolve));
      },
      requestReport: () => log.push('report'),
      heartbeat: () => log.push(`heartbeat@${clock.now()}`),
      configurationTag: () => tag,
      refetch: () => log.push('refetch'),
      fencingStarted: () => log.push('fencing started'),
      wake: () => log.push('wake'),
    },
  );
  /** Both halves of contact, as of now. */
  const contact = (): void => {
    fencing.snapshotSeen(snapshot(tag), clock.now());
    fencing.reportAnswered({ generation: '1', configuration_tag: tag, node_timeout_seconds: T_MS / 1000 }, clock.now());
  };
  return {
    clock,
    fencing,
    log,
    contact,
    mounts: () => mounts,
    setTag: (t: string) => (tag = t),
    answerLastChance: (a: unknown) => answerLastChance?.(a),
  };
}

describe('SelfFencing (manual clock)', () => {
  it('heartbeats every third of the bound; may act only with both halves of contact within the bound', async () => {
    const { clock, fencing, log, contact } = setup({ nodeTimeoutMs: T_MS });
    fencing.start();
    expect(fencing.mayAct()).toBe(false); // nothing confirmed yet
    fencing.snapshotSeen(snapshot('t1'), clock.now());
    expect(fencing.mayAct()).toBe(false); // the configuration, but no report accepted
    contact();
    expect(fencing.mayAct()).toBe(true);
    const start = clock.now();
    for (let i = 0; i < 3; i++) {
      await clock.advance(500);
      contact();
    }
    expect(log.filter((l) => l.startsWith('heartbeat'))).toEqual([1, 2, 3].map((i) => `heartbeat@${start + 500 * i}`));
    expect(fencing.phase).toBe('inContact');
    fencing.stop();
  });

  it('at the bound, one last report; answered, contact is confirmed and nothing is fenced', async () => {
    const { clock, fencing, log, contact, answerLastChance } = setup({ nodeTimeoutMs: T_MS });
    fencing.start();
    contact();
    await clock.advance(1500);
    expect(fencing.phase).toBe('checking');
    expect(log).toContain('last chance');
    answerLastChance({ generation: '1', configuration_tag: 't1', node_timeout_seconds: 3 });
    await settle();
    // The answer confirms a report sent at the bound; the configuration half is older still.
    fencing.snapshotSeen(snapshot('t1'), clock.now());
    fencing.evaluate();
    expect(fencing.phase).toBe('inContact');
    expect(log).not.toContain('fencing started');
    fencing.stop();
  });

  it('no answer within the last chance: stops the containers, unmounts what is under the mount root, reports it', async () => {
    const { clock, fencing, log, contact, mounts } = setup({ nodeTimeoutMs: T_MS });
    fencing.start();
    contact();
    await clock.advance(1500 + 499);
    expect(fencing.phase).toBe('checking');
    await clock.advance(1);
    expect(fencing.phase).toBe('fenced');
    expect(log.filter((l) => !l.startsWith('heartbeat'))).toEqual([
      'last chance',
      'fencing started',
      `stop /flocker/${DS} pg`,
      `unmount /flocker/${DS}`,
      'report',
    ]);
    expect(mounts().map((m) => m.mountPoint)).toEqual(['/elsewhere']);
    expect(fencing.report).toMatchObject({
      state: 'fenced',
      stopped_containers: ['writer'],
      removed_mounts: [`/flocker/${DS}`],
    });
    expect(fencing.mayAct()).toBe(false);
    fencing.stop();
  });

  it('contact confirmed after the fence: recovering (stale mounts first), then in contact, reported as recovered', async () => {
    const { clock, fencing, log, contact } = setup({ nodeTimeoutMs: T_MS });
    fencing.start();
    contact();
    await clock.advance(2000);
    expect(fencing.phase).toBe('fenced');
    log.length = 0;
    await clock.advance(100);
    contact();
    expect(fencing.phase).toBe('recovering');
    expect(fencing.mayAct()).toBe(false);
    expect(log).toEqual(['wake']);
    // A full look still finds a stale mount: still recovering.
    fencing.looked({
      instanceId: 'i-me',
      volumes: [],
      strayMounts: [{ datasetId: DS, mountPath: `/flocker/${DS}`, device: '/dev/loop9' }],
    });
    expect(fencing.phase).toBe('recovering');
    fencing.looked({ instanceId: 'i-me', volumes: [] });
    expect(fencing.phase).toBe('inContact');
    expect(fencing.mayAct()).toBe(true);
    expect(log).toEqual(['wake', 'report', 'wake']);
    expect(fencing.report).toMatchObject({ state: 'recovered' });
    fencing.stop();
  });

  it('a snapshot showing this node dead fences at once', async () => {
    const { clock, fencing, contact } = setup({ nodeTimeoutMs: T_MS });
    fencing.start();
    contact();
    await clock.advance(10);
    fencing.snapshotSeen(snapshot('t1', false), clock.now());
    fencing.evaluate();
    expect(fencing.phase).toBe('fencing');
    await settle();
    expect(fencing.phase).toBe('fenced');
    fencing.stop();
  });

  /** The watch is opened (its lines prove contact as of now, generation e.1.4), then a report is accepted at e.1.5. */
  async function watchThenReportAccepted() {
    const { clock, fencing } = setup({ nodeTimeoutMs: T_MS });
    fencing.start();
    const watchAskedAt = clock.now();
    fencing.snapshotSeen({ ...snapshot('t1'), generation: 'e.1.4' }, watchAskedAt);
    await clock.advance(100);
    fencing.reportAnswered({ generation: 'e.1.5', configuration_tag: 't1', node_timeout_seconds: 3 }, clock.now());
    await clock.advance(100);
    return { fencing, watchAskedAt };
  }

  it("a watch's line showing this node dead, newer than our latest accepted report's answer, fences at once though the watch was asked before it", async () => {
    const { fencing, watchAskedAt } = await watchThenReportAccepted();
    // A line written after that report was applied shows this node dead: at once.
    fencing.snapshotSeen({ ...snapshot('t1', false), generation: 'e.1.7' }, watchAskedAt);
    fencing.evaluate();
    expect(fencing.phase).toBe('fencing');
    await settle();
    fencing.stop();
  });

  it('a line showing this node dead that may predate our latest accepted report (not newer, another epoch, opaque) waits for the bound as before', async () => {
    for (const generation of ['e.1.5', 'e.1.4', 'e.0.6', 'f.1.9', '7']) {
      const { fencing, watchAskedAt } = await watchThenReportAccepted();
      fencing.snapshotSeen({ ...snapshot('t1', false), generation }, watchAskedAt);
      fencing.evaluate();
      expect({ generation, phase: fencing.phase }).toEqual({ generation, phase: 'inContact' });
      fencing.stop();
    }
  });

  it('a report accepted after a line showing this node dead brings it back (the report revived it)', async () => {
    const { clock, fencing } = setup({ nodeTimeoutMs: T_MS });
    fencing.start();
    const watchAskedAt = clock.now();
    fencing.reportAnswered({ generation: 'e.1.5', configuration_tag: 't1', node_timeout_seconds: 3 }, clock.now());
    await clock.advance(100);
    // Before the next evaluation, a report sent after the line arrived is accepted.
    fencing.snapshotSeen({ ...snapshot('t1', false), generation: 'e.1.6' }, watchAskedAt);
    await clock.advance(10);
    fencing.reportAnswered({ generation: 'e.1.8', configuration_tag: 't1', node_timeout_seconds: 3 }, clock.now() - 5);
    expect(fencing.phase).toBe('inContact');
    fencing.stop();
  });

  it('a report answered with another configuration tag fetches the configuration and does not confirm it', async () => {
    const { clock, fencing, log, setTag } = setup({ nodeTimeoutMs: T_MS });
    fencing.start();
    fencing.snapshotSeen(snapshot('t1'), clock.now() - 10_000); // an old configuration
    setTag('t1');
    fencing.reportAnswered({ generation: '2', configuration_tag: 't2' }, clock.now());
    expect(log).toContain('refetch');
    expect(fencing.mayAct()).toBe(false);
    fencing.stop();
  });

  it('stale mounts: users stopped, unmounted, the driver asked to release what fences left, recorded in the fence report', async () => {
    let released = 0;
    const { clock, fencing, log, contact } = setup({ nodeTimeoutMs: T_MS, releaseFenced: async () => void released++ });
    fencing.start();
    contact();
    await clock.advance(2000); // fenced: there is a fence report to add to
    log.length = 0;
    released = 0;
    const removed = await fencing.removeStrayMounts([{ datasetId: DS, mountPath: '/flocker/x', device: '/dev/loop9' }]);
    expect(removed).toBe(true);
    expect(log).toEqual(['stop /flocker/x pg', 'unmount /flocker/x']);
    expect(released).toBe(1);
    expect(fencing.report?.removed_mounts).toEqual([`/flocker/${DS}`, '/flocker/x']);
    expect(await fencing.removeStrayMounts([])).toBe(false);
    fencing.stop();
  });

  it('without a node timeout or a configured bound, fencing is off: may act, heartbeats at the resync interval', async () => {
    const { clock, fencing, log } = setup();
    fencing.start();
    expect(fencing.mayAct()).toBe(true);
    await clock.advance(60_000);
    expect(fencing.phase).toBe('inContact');
    expect(log.filter((l) => l.startsWith('heartbeat'))).toHaveLength(6);
    fencing.stop();
    expect(clock.pending).toBe(0);
  });
});

describe('SelfFencing: what the fence report says (review F, session 17, findings 3 and 6)', () => {
  it('Docker down: the fence says only the host’s mounts came off and the containers could not be stopped', async () => {
    const clock = new ManualClock();
    const logged: string[] = [];
    let mounts: HostMount[] = [{ device: '/dev/loop1', mountPoint: `/flocker/${DS}`, majorMinor: '7:1' }];
    const logger = winston.createLogger({
      level: 'debug',
      transports: [
        new winston.transports.Stream({
          stream: new Writable({
            objectMode: true,
            write: (info: { message: string }, _enc, done) => {
              logged.push(info.message);
              done();
            },
          }),
        }),
      ],
    });
    const fencing = new SelfFencing(
      {
        nodeUuid: ME,
        clock,
        logger,
        mountRoot: '/flocker',
        resyncIntervalMs: 10_000,
        lastNodeTimeoutMs: T_MS,
        hostOps: {
          listMounts: async () => mounts,
          unmount: async (path) => {
            mounts = mounts.filter((m) => m.mountPoint !== path);
          },
        },
        containers: {
          stopContainersUsing: async () => {
            throw new Error('connect ECONNREFUSED /var/run/docker.sock');
          },
        },
      },
      {
        stopTargets: (paths) => ({ paths, volumes: ['pg'] }),
        sendReportNow: () => Promise.reject(new Error('cut off')),
        requestReport: () => undefined,
        heartbeat: () => undefined,
        configurationTag: () => 't1',
        refetch: () => undefined,
        fencingStarted: () => undefined,
        wake: () => undefined,
      },
    );
    fencing.start();
    fencing.snapshotSeen(snapshot('t1'), clock.now());
    fencing.reportAnswered(
      { generation: '1', configuration_tag: 't1', node_timeout_seconds: T_MS / 1000 },
      clock.now(),
    );
    await clock.advance(1500);
    await settle();
    expect(fencing.phase).toBe('fenced');
    const note =
      "could not stop the containers using its volumes (connect ECONNREFUSED /var/run/docker.sock): only the host's mounts came off (a lazy unmount), " +
      "so such a container keeps writing through its own mount namespace until another host's force detach fences the device";
    expect(fencing.report).toEqual({
      state: 'fenced',
      since: expect.any(String),
      reason: `no confirmed configuration from the control service for 1500 ms (self-fence bound 1500 ms); ${note}`,
      stopped_containers: [],
      removed_mounts: [`/flocker/${DS}`],
    });
    expect(logged).toContain(`fence: ${note}`);
    fencing.stop();
  });

  it('Docker answered: no such note', async () => {
    const { clock, fencing, contact } = setup({ nodeTimeoutMs: T_MS });
    fencing.start();
    contact();
    await clock.advance(2000);
    expect(fencing.phase).toBe('fenced');
    // Fenced when the last chance ran out, 500 ms after the bound.
    expect(fencing.report?.reason).toBe(
      'no confirmed configuration from the control service for 2000 ms (self-fence bound 1500 ms)',
    );
    fencing.stop();
  });

  it('a host coming back declared dead fences at once, said as such, not as a fence "for 0 ms"', async () => {
    const { clock, fencing } = setup({ nodeTimeoutMs: T_MS });
    fencing.start();
    await clock.advance(40);
    fencing.snapshotSeen(snapshot('t1', false), clock.now());
    fencing.evaluate();
    await settle();
    expect(fencing.phase).toBe('fenced');
    expect(fencing.report?.reason).toBe(
      'the control service had declared this node dead when this agent started 40 ms ago (a host coming back), before its first confirmed contact',
    );
    fencing.stop();
  });
});
