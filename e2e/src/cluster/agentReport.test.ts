import { firstLogTime, reportedSince } from './agentReport';

const line = (message: string, timestamp: string): string =>
  JSON.stringify({ level: 'info', message, service: 'flocker-dataset-agent', timestamp });

describe('firstLogTime', () => {
  it('is the timestamp of the first JSON line with one, skipping the spawn header and other output', () => {
    const log = [
      '--- 2026-12-06T19:40:41.100Z nsenter ... node main.js --config agent.yml',
      '(node:123) ExperimentalWarning: something',
      '{"level":"info","message":"no timestamp"}',
      line('metrics listening', '2026-12-06T19:40:46.200Z'),
      line('dataset agent starting', '2026-12-06T19:40:46.250Z'),
    ].join('\n');
    expect(firstLogTime(log)).toBe(Date.parse('2026-12-06T19:40:46.200Z'));
  });

  it('is undefined before the process logged (empty, header only, a half-written line, a bad timestamp)', () => {
    expect(firstLogTime('')).toBeUndefined();
    expect(firstLogTime('\n--- 2026-12-06T19:40:41.100Z nsenter ...\n')).toBeUndefined();
    expect(firstLogTime('{"level":"info","message":"dataset agent st')).toBeUndefined();
    expect(firstLogTime(line('x', 'not a time'))).toBeUndefined();
  });
});

describe('reportedSince', () => {
  const started = Date.parse('2026-12-06T19:40:46.200Z');
  it('holds for a report at or after the first log line of the new process', () => {
    expect(reportedSince('2026-12-06T19:40:46.200Z', started)).toBe(true);
    expect(reportedSince('2026-12-06T19:40:47.000Z', started)).toBe(true);
  });
  it("does not hold for the old process's last report, nor without a start or a node", () => {
    expect(reportedSince('2026-12-06T19:40:40.999Z', started)).toBe(false);
    expect(reportedSince(undefined, started)).toBe(false);
    expect(reportedSince('2026-12-06T19:40:47.000Z', undefined)).toBe(false);
    expect(reportedSince('garbage', started)).toBe(false);
  });
});
