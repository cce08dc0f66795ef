/**
 * TN F7/F9: `flocker status` showed an old "recovered from fencing (fenced at …)" entry indefinitely, through agent
 * restarts: the node report carried the last fence report for good (kept in the state directory). A recovered fence
 * is now reported for RECOVERED_REPORT_MS (an hour) after it was lifted, counted from the lift (kept with the report
 * over a restart), then no more (the agent's log has it); a new fence is reported as ever.
 */
import { mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '@flocker/runtime/testing';
import { FENCE_REPORT_FILE } from './fenceReportFile';
import { RECOVERED_REPORT_MS } from './SelfFencing';
import { fencingAgent } from './testing/fencingAgent';

const MIN = 60_000;

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'fence-age-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** One agent process on a manual clock starting at `start` (wall = monotonic), with one mount and one victim. */
const agent = (start = 1_000_000) => fencingAgent(dir, new ManualClock(start));

/** Fenced (cut off past the bound), then back in contact: recovered at the returned clock time. */
async function fencedThenRecovered(start?: number) {
  const a = agent(start);
  a.fencing.start();
  a.contact();
  await a.clock.advance(2000);
  expect(a.fencing.phase).toBe('fenced');
  await a.clock.advance(100); // the fence pass through
  a.contact();
  a.fencing.looked({ instanceId: 'i-me', volumes: [] }); // a full look: no stale mount left
  await a.fencing.settled();
  expect(a.fencing.report?.state).toBe('recovered');
  return { ...a, recoveredAt: a.clock.now() };
}

/** Keeps contact (a configuration and an answer each heartbeat) while the clock runs `ms`. */
async function inContactFor(a: ReturnType<typeof agent>, ms: number): Promise<void> {
  for (let done = 0; done < ms; done += 1000) {
    a.contact();
    await a.clock.advance(1000);
  }
  a.contact();
}

describe('a recovered fence ages out of the node report', () => {
  it('reported for an hour after the lift, then not (a report is asked for then)', async () => {
    const a = await fencedThenRecovered();
    await inContactFor(a, RECOVERED_REPORT_MS - MIN);
    expect(a.fencing.report).toMatchObject({ state: 'recovered', stopped_containers: ['db'] });
    a.log.length = 0;
    await inContactFor(a, MIN);
    expect(a.fencing.report).toBeUndefined();
    expect(a.log).toContain('report');
    a.fencing.stop();
  });

  it('over a restart: counted from the lift, not from the restart', async () => {
    const a = await fencedThenRecovered();
    await inContactFor(a, 10 * MIN);
    a.fencing.stop();
    const b = agent(a.clock.now());
    b.fencing.start();
    b.contact();
    expect(b.fencing.report).toMatchObject({ state: 'recovered' });
    await inContactFor(b, RECOVERED_REPORT_MS - 10 * MIN - MIN);
    expect(b.fencing.report).toMatchObject({ state: 'recovered' });
    await inContactFor(b, 2 * MIN);
    expect(b.fencing.report).toBeUndefined();
    b.fencing.stop();
    // And after another restart, still not (the kept file says when it was lifted).
    const c = agent(b.clock.now());
    c.fencing.start();
    c.contact();
    expect(c.fencing.report).toBeUndefined();
    c.fencing.stop();
  });

  it('a kept recovered report of an older agent (no lift time): aged from when it was written', async () => {
    const report = { state: 'recovered', since: '2026-12-06T10:00:00.000Z', reason: 'old', stopped_containers: ['x'] };
    const file = join(dir, FENCE_REPORT_FILE);
    writeFileSync(file, JSON.stringify(report));
    const twoHoursAgo = (Date.now() - 120 * MIN) / 1000;
    utimesSync(file, twoHoursAgo, twoHoursAgo);
    const old = agent(Date.now());
    old.fencing.start();
    old.contact();
    expect(old.fencing.report).toBeUndefined();
    old.fencing.stop();
    const recent = join(dir, FENCE_REPORT_FILE);
    writeFileSync(recent, JSON.stringify(report)); // written just now
    const fresh = agent(Date.now());
    fresh.fencing.start();
    fresh.contact();
    expect(fresh.fencing.report).toMatchObject({ state: 'recovered', stopped_containers: ['x'] });
    fresh.fencing.stop();
  });

  it('the lift time is kept beside the report, which the node report never carries', async () => {
    const a = await fencedThenRecovered();
    await a.fencing.settled();
    const kept = JSON.parse(readFileSync(join(dir, FENCE_REPORT_FILE), 'utf8')) as Record<string, unknown>;
    expect(kept).toMatchObject({ state: 'recovered', recovered_at: new Date(a.recoveredAt).toISOString() });
    expect(a.fencing.report).not.toHaveProperty('recovered_at');
    a.fencing.stop();
  });

  it('a new fence after an aged-out one is reported', async () => {
    const a = await fencedThenRecovered();
    await inContactFor(a, RECOVERED_REPORT_MS + MIN);
    expect(a.fencing.report).toBeUndefined();
    await a.clock.advance(2000); // cut off again
    expect(a.fencing.phase).toBe('fenced');
    await a.clock.advance(100);
    expect(a.fencing.report).toMatchObject({ state: 'fenced' });
    a.contact();
    a.fencing.looked({ instanceId: 'i-me', volumes: [] });
    await a.fencing.settled();
    expect(a.fencing.report).toMatchObject({ state: 'recovered' });
    a.fencing.stop();
  });
});
