/**
 * Review FR F13 (session 18): a container report went stale on the wall clock (now - lastSeen > 30 s), the one
 * liveness rule 1946fbf left there: a step forward of the control host's clock emptied /v1/state/containers until every
 * container agent reported again, a step back kept a silent agent's containers "fresh" for the size of the step, and
 * with etcd a report another replica received carried that replica's wall clock, so two replicas whose clocks differ
 * by more than 30 s disagreed (flocker-deploy --wait through the one ahead waited for nothing). Staleness is now
 * judged on when this process heard the report (monotonic); reported_at stays the wall time shown.
 */
import winston from 'winston';
import type { ContainerReport } from '@flocker/api';
import { MemoryConfigurationStore, type StoreListener } from './ConfigurationStore';
import { ControlState } from './ControlState';
import { CONTAINER_REPORT_STALE_MS as STALE } from './nodeReports';
import { A, B, T0 } from './testing/fixtures';

const HOUR = 3_600_000;
const db: ContainerReport = { containers: [{ name: 'db', image: 'busybox', running: true }] };

let mono = 5_000;
let wall = T0;
const pass = (ms: number): void => {
  mono += ms;
  wall += ms;
};
let state: ControlState | undefined;
let listener: StoreListener | undefined;

afterEach(async () => {
  await state?.close();
  state = undefined;
  mono = 5_000;
  wall = T0;
});

async function open(): Promise<ControlState> {
  const store = Object.assign(new MemoryConfigurationStore(), {
    subscribe: (l: StoreListener) => {
      listener = l;
      return Promise.resolve();
    },
  });
  state = await ControlState.open({
    store,
    nodeTimeoutMs: 30_000,
    logger: winston.createLogger({ silent: true }),
    now: () => wall,
    monoNow: () => mono,
    livenessCheckMs: HOUR,
  });
  return state;
}

const names = (s: ControlState) => s.containerStates().map((c) => c.name);

it('a wall-clock step forward right after a report does not drop its containers; staleness is real time', async () => {
  const s = await open();
  s.reportContainers(A, db);
  const reportedAt = new Date(wall).toISOString();
  wall += HOUR;
  expect(names(s)).toEqual(['db']);
  // reported_at stays the wall time the report came.
  expect(s.containerStates()[0]?.reported_at).toBe(reportedAt);
  pass(STALE);
  expect(names(s)).toEqual(['db']);
  pass(1);
  expect(names(s)).toEqual([]);
});

it('a step back does not keep a silent agent fresh for the size of the step', async () => {
  const s = await open();
  s.reportContainers(A, db);
  wall -= HOUR;
  pass(STALE + 1);
  expect(names(s)).toEqual([]);
});

it("through the store: a report whose last_seen is old by this replica's clock is fresh when heard", async () => {
  const s = await open();
  // The replica that received it runs a minute behind.
  listener?.containers?.(A, db, wall - 60_000);
  expect(names(s)).toEqual(['db']);
  // Its next refresh carries a last_seen older than a report this replica took directly since: heard all the same.
  pass(1_000);
  s.reportContainers(A, db);
  pass(STALE - 1);
  const behind = wall - 60_000;
  listener?.containers?.(A, db, behind);
  pass(STALE - 1);
  expect(names(s)).toEqual(['db']);
  // The same last_seen again (a re-read) is no news.
  listener?.containers?.(A, db, behind);
  pass(2);
  expect(names(s)).toEqual([]);
});

it("what the store held at this replica's start is aged on its wall clock (a day-old report lists nothing)", async () => {
  const s = await open();
  listener?.containers?.(A, db, wall - HOUR, true);
  listener?.containers?.(B, { containers: [{ name: 'web', image: 'busybox', running: true }] }, wall - 1_000, true);
  expect(names(s)).toEqual(['web']);
  pass(STALE - 1_000);
  expect(names(s)).toEqual(['web']);
  pass(1);
  expect(names(s)).toEqual([]);
});
