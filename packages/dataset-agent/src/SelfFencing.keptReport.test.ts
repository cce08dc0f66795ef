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
import { ManualClock } from '@flocker/runtime/testing';
import winston from 'winston';
import { FENCE_REPORT_FILE, fenceReportFile, type FenceReportStore } from './fenceReportFile';
import type { HostMount } from './HostOps';
import { SelfFencing } from './SelfFencing';
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

/** One agent process: a SelfFencing on a manual clock, its mounts, its containers (each fence stops `victim`). */
function agent(store: FenceReportStore, victim: string) {
  const clock = new ManualClock();
  const log: string[] = [];
  let mounts: HostMount[] = [{ device: '/dev/loop1', mountPoint: `/flocker/${DS}`, majorMinor: '7:1' }];
  const fencing = new SelfFencing(
    {
      nodeUuid: ME,
      clock,
      logger: quiet,
      mountRoot: '/flocker/',
      resyncIntervalMs: 10_000,
      lastNodeTimeoutMs: T_MS,
      fenceReports: store,
      hostOps: {
        listMounts: async () => mounts,
        unmount: async (path) => {
          mounts = mounts.filter((m) => m.mountPoint !== path);
        },
      },
      containers: { stopContainersUsing: async () => [victim] },
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
    expect(kept()).toEqual({ ...before, state: 'recovered' });
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

  it('a crash before the rename leaves the kept report as it was (temp, fsync, rename)', () => {
    const store = fenceReportFile(dir, quiet);
    const first = { state: 'fenced' as const, since: '2026-12-06T06:00:00.000Z', reason: 'cut off' };
    store.save(first);
    const steps: string[] = [];
    const crashing = fenceReportFile(dir, quiet, {
      openSync: (f, flags, mode) => fs.openSync(f, flags, mode),
      writeSync: (fd, buffer, offset, length, position) => fs.writeSync(fd, buffer, offset, length, position),
      fsyncSync: (fd) => {
        steps.push('fsync');
        fs.fsyncSync(fd);
      },
      closeSync: (fd) => fs.closeSync(fd),
      renameSync: () => {
        throw new Error('killed');
      },
      rmSync: (f, o) => fs.rmSync(f, o),
    });
    crashing.save({ ...first, state: 'recovered' });
    expect(steps).toContain('fsync');
    expect(fenceReportFile(dir, quiet).load()).toEqual(first);
  });
});
