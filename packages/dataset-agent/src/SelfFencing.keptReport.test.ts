/**
 * FX4's gap after 262773d: the fence report (what the container agent reads to start the fence's victims again once
 * it is lifted) was kept only in memory, so a dataset agent restarted while fenced forgot it and the victims stayed
 * stopped for good. Now it is kept in the state directory (fenceReportFile) and read at start.
 */
import * as fs from 'node:fs';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClusterSnapshot } from '@flocker/api';
import { ManualClock, settle } from '@flocker/runtime/testing';
import winston from 'winston';
import { FENCE_REPORT_FILE, fenceReportFile, type FenceReportStore } from './fenceReportFile';
import type { HostMount } from './HostOps';
import { SelfFencing, SETTLE_MS, type FenceReport } from './SelfFencing';
import { nodeState } from './testing/fakes';

const ME = '11111111-1111-4111-8111-111111111111';
const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const T_MS = 3000; // bound 1.5 s, last chance 500 ms

const snapshot = (): ClusterSnapshot => ({
  generation: '1',
  configuration_tag: 't1',
  datasets: [],
  leases: [],
  nodes: [nodeState(ME, { host: 'a', instance_id: 'i-me' })],
  node_timeout_seconds: T_MS / 1000,
});

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'fx14-fence-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const quiet = winston.createLogger({ silent: true });

/**
 * One agent process: a SelfFencing on a manual clock, its mounts, its containers (each fence stops `victim`); the
 * kills and unmounts are told in `log`.
 */
function agent(store: FenceReportStore, victim: string, log: string[] = [], logger = quiet) {
  const clock = new ManualClock();
  let mounts: HostMount[] = [{ device: '/dev/loop1', mountPoint: `/flocker/${DS}`, majorMinor: '7:1' }];
  const fencing = new SelfFencing(
    {
      nodeUuid: ME,
      clock,
      logger,
      mountRoot: '/flocker/',
      resyncIntervalMs: 10_000,
      lastNodeTimeoutMs: T_MS,
      fenceReports: store,
      hostOps: {
        listMounts: async () => mounts,
        unmount: async (path) => {
          log.push(`unmount ${path}`);
          mounts = mounts.filter((m) => m.mountPoint !== path);
        },
      },
      containers: {
        stopContainersUsing: async () => {
          log.push(`kill ${victim}`);
          return [victim];
        },
      },
    },
    {
      stopTargets: (paths) => ({ paths, volumes: [] }),
      sendReportNow: () => new Promise(() => undefined), // cut off: never answered
      requestReport: () => log.push('report'),
      heartbeat: () => undefined,
      configurationTag: () => 't1',
      refetch: () => undefined,
      fencingStarted: () => log.push('fencing started'),
      wake: () => undefined,
    },
  );
  const contact = (): void => {
    fencing.snapshotSeen(snapshot(), clock.now());
    fencing.reportAnswered(
      { generation: '1', configuration_tag: 't1', node_timeout_seconds: T_MS / 1000 },
      clock.now(),
    );
  };
  return { clock, fencing, log, contact };
}

const kept = (): unknown => JSON.parse(readFileSync(join(dir, FENCE_REPORT_FILE), 'utf8'));

async function fencedAgent() {
  const a = agent(fenceReportFile(dir, quiet), 'db');
  a.fencing.start();
  a.contact();
  await a.clock.advance(2000);
  expect(a.fencing.phase).toBe('fenced');
  await a.fencing.settled(); // the report's writes (in the background) are through
  a.fencing.stop(); // kill -9: nothing more runs
  return a;
}

describe('the fence report kept over a restart', () => {
  it('fenced: kept in the state directory as reported', async () => {
    const a = await fencedAgent();
    expect(kept()).toEqual(a.fencing.report);
    expect(kept()).toMatchObject({ state: 'fenced', stopped_containers: ['db'], removed_mounts: [`/flocker/${DS}`] });
    expect(readdirSync(dir)).toEqual([FENCE_REPORT_FILE]); // no temp file left
  });

  it('restarted while fenced: still reported fenced, then recovered (with its victims) once contact is confirmed', async () => {
    const before = (await fencedAgent()).fencing.report;
    const b = agent(fenceReportFile(dir, quiet), 'other');
    b.fencing.start();
    expect(b.fencing.report).toEqual(before);
    b.fencing.snapshotSeen(snapshot(), b.clock.now()); // one half of contact only: not lifted
    b.fencing.evaluate();
    expect(b.fencing.report?.state).toBe('fenced');
    b.contact();
    expect(b.fencing.report).toEqual({ ...before, state: 'recovered' });
    await b.fencing.settled();
    // With when it was lifted, from which it ages out of the node report (RECOVERED_REPORT_MS).
    expect(kept()).toEqual({ ...before, state: 'recovered', recovered_at: new Date(b.clock.wallNow()).toISOString() });
    expect(b.log).toContain('report');
    b.fencing.stop();
    // Restarted again later: the lifted report is still told (until the next fence), not fenced again.
    const c = agent(fenceReportFile(dir, quiet), 'other');
    expect(c.fencing.report).toEqual({ ...before, state: 'recovered' });
  });

  it('restarted while fenced and still cut off: the fence goes on with its start and victims, and adds the new ones', async () => {
    const before = (await fencedAgent()).fencing.report;
    const b = agent(fenceReportFile(dir, quiet), 'web');
    b.fencing.start();
    await b.clock.advance(2100); // the bound from start, the last chance: fenced again
    expect(b.fencing.phase).toBe('fenced');
    expect(b.fencing.report).toMatchObject({
      state: 'fenced',
      since: before?.since,
      stopped_containers: ['db', 'web'],
    });
    await b.fencing.settled();
    expect(kept()).toEqual(b.fencing.report);
    b.fencing.stop();
  });

  it('a corrupt or foreign file is logged and ignored; the next fence writes a good one', async () => {
    const warned: string[] = [];
    const logger = { warn: (m: string) => void warned.push(m) } as unknown as winston.Logger;
    writeFileSync(join(dir, FENCE_REPORT_FILE), '{"state": "fenced", "si');
    expect(fenceReportFile(dir, logger).load()).toBeUndefined();
    writeFileSync(join(dir, FENCE_REPORT_FILE), JSON.stringify({ state: 'asleep', since: 1 }));
    expect(fenceReportFile(dir, logger).load()).toBeUndefined();
    expect(warned).toEqual([
      'the kept fence report is not JSON; ignored',
      'the kept fence report is not a fence report; ignored',
    ]);
    expect(fenceReportFile(join(dir, 'none'), logger).load()).toBeUndefined(); // no file: nothing said
    expect(warned).toHaveLength(2);
    const a = agent(fenceReportFile(dir, logger), 'db');
    expect(a.fencing.report).toBeUndefined();
    await fencedAgent();
    expect(kept()).toMatchObject({ state: 'fenced' });
  });

  // FR's F10: the kept report only serves availability (the victims start again after a restart); a slow or stalled
  // state disk must neither delay the kill nor block the agent.
  it('the fence kills before the report is kept, and a save that never finishes holds up neither the fence nor the way back', async () => {
    const log: string[] = [];
    const stalled: FenceReportStore = {
      load: () => undefined,
      save: (r) => {
        log.push(`save ${r.state}`);
        return new Promise<void>(() => undefined); // a stalled disk: never done
      },
    };
    const a = agent(stalled, 'db', log);
    a.fencing.start();
    a.contact();
    await a.clock.advance(2000);
    expect(a.fencing.phase).toBe('fenced');
    expect(a.fencing.report).toMatchObject({
      state: 'fenced',
      stopped_containers: ['db'],
      removed_mounts: [`/flocker/${DS}`],
    });
    expect(log.indexOf('kill db')).toBeGreaterThanOrEqual(0);
    expect(log.indexOf('kill db')).toBeLessThan(log.indexOf('save fenced'));
    expect(log.filter((l) => l.startsWith('save'))).toEqual(['save fenced']); // one write at a time: the rest waits
    // Contact back, nothing stale left: lifted in memory (what is reported) although nothing could be written.
    await a.clock.advance(100);
    a.contact();
    a.fencing.looked({ instanceId: 'i-me', volumes: [], strayMounts: [] });
    expect(a.fencing.phase).toBe('inContact');
    expect(a.fencing.report?.state).toBe('recovered');
    a.fencing.stop();
  });

  // FR's F14: a stop waits for the report's write, but a stalled state disk must not hold it until the supervisor's
  // SIGKILL (the write is best effort; a kill -9 converges anyway).
  it('a stop waits for a save that never finishes no longer than SETTLE_MS, and says the report was not kept', async () => {
    const warned: string[] = [];
    const none = (): undefined => undefined;
    const logger = { warn: (m: string) => void warned.push(m), info: none, error: none, debug: none };
    const stalled: FenceReportStore = { load: () => undefined, save: () => new Promise<void>(() => undefined) };
    const a = agent(stalled, 'db', [], logger as unknown as winston.Logger);
    a.fencing.start();
    a.contact();
    await a.clock.advance(2000);
    expect(a.fencing.phase).toBe('fenced');
    a.fencing.stop();
    let done = false;
    void a.fencing.settled().then(() => (done = true));
    const notKept = 'fence report not kept: its write to the state directory did not finish in time';
    await a.clock.advance(SETTLE_MS - 1);
    expect(done).toBe(false);
    expect(warned).not.toContain(notKept);
    await a.clock.advance(1);
    expect(done).toBe(true);
    expect(warned.filter((m) => m === notKept)).toHaveLength(1);
    expect(a.clock.pending).toBe(0);
  });

  it('saves go one at a time, in order, the newest report last; a failed one does not stop the next', async () => {
    const saves: { report: FenceReport; done: () => void; fail: (e: Error) => void }[] = [];
    const store: FenceReportStore = {
      load: () => undefined,
      save: (report) =>
        new Promise<void>((done, fail) => {
          saves.push({ report, done, fail });
        }),
    };
    const a = agent(store, 'db');
    a.fencing.start();
    a.contact();
    await a.clock.advance(2000);
    expect(a.fencing.phase).toBe('fenced');
    expect(saves).toHaveLength(1); // after the kill; the report after the unmounts waits for it
    expect(saves[0]?.report).toMatchObject({ state: 'fenced', stopped_containers: ['db'] });
    saves[0]?.fail(new Error('EIO'));
    await settle();
    expect(saves).toHaveLength(2);
    expect(saves[1]?.report).toEqual(a.fencing.report); // the newest: mounts removed too
    await a.clock.advance(100);
    a.contact();
    a.fencing.looked({ instanceId: 'i-me', volumes: [], strayMounts: [] });
    expect(a.fencing.report?.state).toBe('recovered');
    await settle();
    expect(saves).toHaveLength(2); // still one at a time
    saves[1]?.done();
    await settle();
    expect(saves.map((s) => s.report.state)).toEqual(['fenced', 'fenced', 'recovered']);
    saves[2]?.done();
    await a.fencing.settled();
    a.fencing.stop();
  });

  it('a crash before the rename leaves the kept report as it was (temp, fsync, rename)', async () => {
    const store = fenceReportFile(dir, quiet);
    const first = { state: 'fenced' as const, since: '2026-12-06T06:00:00.000Z', reason: 'cut off' };
    await store.save(first);
    const steps: string[] = [];
    const crashing = fenceReportFile(dir, quiet, {
      open: async (f, flags, mode) => {
        const handle = await fs.promises.open(f, flags, mode);
        return {
          write: (buffer, offset, length, position) => handle.write(buffer, offset, length, position),
          sync: () => {
            steps.push('fsync');
            return handle.sync();
          },
          close: () => handle.close(),
        };
      },
      rename: () => Promise.reject(new Error('killed')),
      rm: (f, o) => fs.promises.rm(f, o),
    });
    await crashing.save({ ...first, state: 'recovered' }); // logged, never thrown
    expect(steps).toContain('fsync');
    expect(fenceReportFile(dir, quiet).load()).toEqual({ report: first });
    expect(readdirSync(dir)).toEqual([FENCE_REPORT_FILE]);
  });
});
