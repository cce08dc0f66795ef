/**
 * Review R2 (session 21), eb366bf: a recovered fence leaves the node report RECOVERED_REPORT_MS after its lift, timed
 * on the wall clock (recoveredAt = clock.wallNow(), report getter compares wallNow()). A wall-clock step right after
 * the lift (NTP correcting a host booted with a wrong RTC: the very host that came back and fenced) drops it at once,
 * before the container agent has started the fence's victims (it does so only while the report says 'recovered'); a
 * step back shows it again. Within one process the age should run on the monotonic clock (clock.now()), the wall clock
 * serving only the kept file across restarts. A kept lift time in the future (written while the wall clock was ahead)
 * keeps the recovered fence in the report until that time + 1 h: the indefinite entry of TN F7/F9 again. Fixed: the
 * age runs on clock.now() from the lift (or the load); at load a lift time ahead of the wall clock, or one that does
 * not parse, counts as now.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '@flocker/runtime/testing';
import { FENCE_REPORT_FILE } from './fenceReportFile';
import { fencingAgent } from './testing/fencingAgent';

const MIN = 60_000;

/** A manual clock whose wall clock can be stepped (NTP) apart from its monotonic one. */
class SkewClock extends ManualClock {
  skew = 0;
  override wallNow(): number {
    return super.wallNow() + this.skew;
  }
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'fence-skew-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** One agent process on a manual clock starting at `start` (wall = monotonic), with one mount and one victim. */
const agent = (start = 1_000_000) => fencingAgent(dir, new SkewClock(start));

/** Keeps contact (a configuration and an answer each heartbeat) while the clock runs `ms`. */
async function inContactFor(a: ReturnType<typeof agent>, ms: number): Promise<void> {
  for (let done = 0; done < ms; done += 1000) {
    a.contact();
    await a.clock.advance(1000);
  }
  a.contact();
}

describe('a recovered fence and wall-clock steps', () => {
  it('a wall-clock step forward of 2 h a minute after the lift does not drop the recovered report', async () => {
    const a = agent();
    a.fencing.start();
    a.contact();
    await a.clock.advance(2000);
    expect(a.fencing.phase).toBe('fenced');
    await a.clock.advance(100);
    a.contact();
    a.fencing.looked({ instanceId: 'i-me', volumes: [] });
    await a.fencing.settled();
    expect(a.fencing.report?.state).toBe('recovered');
    await inContactFor(a, MIN);
    a.clock.skew = 120 * MIN; // NTP steps the wall clock
    await inContactFor(a, 1000);
    expect(a.fencing.report).toMatchObject({ state: 'recovered', stopped_containers: ['db'] });
    a.fencing.stop();
  });
  it('a kept lift time in the future (the clock was ahead when it was written) does not keep the report for days', async () => {
    const start = 1_000_000_000;
    const report = { state: 'recovered', since: new Date(start).toISOString(), reason: 'r', stopped_containers: ['x'] };
    const tenDaysAhead = new Date(start + 10 * 24 * 60 * MIN).toISOString();
    writeFileSync(join(dir, FENCE_REPORT_FILE), JSON.stringify({ ...report, recovered_at: tenDaysAhead }));
    const a = agent(start);
    a.fencing.start();
    a.contact();
    expect(a.fencing.report).toMatchObject({ state: 'recovered' });
    await inContactFor(a, 59 * MIN);
    expect(a.fencing.report).toMatchObject({ state: 'recovered' });
    await a.fencing.settled();
    // Kept as taken (now): a restart within the hour does not start it again from its own "now".
    const kept = JSON.parse(readFileSync(join(dir, FENCE_REPORT_FILE), 'utf8')) as Record<string, unknown>;
    expect(kept).toMatchObject({ state: 'recovered', recovered_at: new Date(start).toISOString() });
    await inContactFor(a, 2 * MIN);
    expect(a.fencing.report).toBeUndefined();
    a.fencing.stop();
  });
  it('a kept lift time that is not a time: the report (its victims) is kept, and leaves an hour from the load', async () => {
    const report = {
      state: 'recovered',
      since: new Date(1_000_000).toISOString(),
      reason: 'r',
      stopped_containers: ['x'],
    };
    writeFileSync(join(dir, FENCE_REPORT_FILE), JSON.stringify({ ...report, recovered_at: 'yesterday' }));
    const a = agent();
    a.fencing.start();
    a.contact();
    expect(a.fencing.report).toMatchObject({ state: 'recovered', stopped_containers: ['x'] });
    await inContactFor(a, 59 * MIN);
    expect(a.fencing.report).toMatchObject({ state: 'recovered' });
    await inContactFor(a, 2 * MIN);
    expect(a.fencing.report).toBeUndefined();
    a.fencing.stop();
  });
  it('a wall-clock step back after the lift does not keep the report past its hour', async () => {
    const a = agent();
    a.fencing.start();
    a.contact();
    await a.clock.advance(2100);
    a.contact();
    a.fencing.looked({ instanceId: 'i-me', volumes: [] });
    await a.fencing.settled();
    expect(a.fencing.report?.state).toBe('recovered');
    a.clock.skew = -120 * MIN;
    await inContactFor(a, 61 * MIN);
    expect(a.fencing.report).toBeUndefined();
    a.fencing.stop();
  });
});
