import type { NodeReport } from '@flocker/api';
import winston from 'winston';
import { changedFields, Reporter, type ReportAnswer } from './Reporter';
import { ManualClock, settle } from '@flocker/runtime/testing';

function setup(o: { progressReportMs?: number; resyncIntervalMs?: number } = {}) {
  const clock = new ManualClock();
  let manifestations: NodeReport['manifestations'] = [];
  const sent: Array<{ at: number; report: NodeReport }> = [];
  const answers: Array<{ answer: ReportAnswer; sentAt: number }> = [];
  let pending: Array<() => void> | null = null; // while set, sends wait until released
  let fail = false;
  const reporter = new Reporter({
    clock,
    logger: winston.createLogger({ silent: true }),
    build: () => ({ uuid: 'n', era: 'e', host: 'h', instance_id: 'i', backend: 'fake', manifestations, errors: [] }),
    send: async (report) => {
      sent.push({ at: clock.now(), report });
      if (pending !== null) await new Promise<void>((r) => pending!.push(r));
      if (fail) throw new Error('connection refused');
      return { generation: '7' };
    },
    resyncIntervalMs: o.resyncIntervalMs ?? 1000,
    progressReportMs: o.progressReportMs ?? 100,
    answered: (answer, sentAt) => answers.push({ answer, sentAt }),
  });
  return {
    clock,
    reporter,
    sent,
    answers,
    change: () =>
      (manifestations = [
        ...manifestations,
        { dataset_id: `d${manifestations.length}`, blockdevice_id: 'b', size: 1, status: 'attached' },
      ]),
    hold: () => (pending = []),
    release: () => {
      const waiting = pending ?? [];
      pending = null;
      for (const r of waiting) r();
    },
    failing: (f: boolean) => (fail = f),
  };
}

describe('Reporter', () => {
  it('sends at once and hands the answer on with the send time', async () => {
    const { clock, reporter, sent, answers } = setup();
    reporter.request();
    await settle();
    expect(sent).toHaveLength(1);
    expect(answers).toEqual([{ answer: { generation: '7' }, sentAt: clock.now() }]);
  });

  it('one request at a time: requests during a send make one more send after it', async () => {
    const { reporter, sent, change, hold, release } = setup();
    hold();
    reporter.request();
    await settle();
    change();
    reporter.request();
    change();
    reporter.request();
    await settle();
    expect(sent).toHaveLength(1);
    release();
    await settle();
    expect(sent).toHaveLength(2);
    expect(sent[1]!.report.manifestations).toHaveLength(2);
    await reporter.settled();
  });

  it('an unchanged report goes out again only after the resync interval, or as a heartbeat', async () => {
    const { clock, reporter, sent } = setup({ resyncIntervalMs: 1000 });
    reporter.request();
    await settle();
    reporter.request();
    await settle();
    expect(sent).toHaveLength(1);
    reporter.heartbeat();
    await settle();
    expect(sent).toHaveLength(2);
    await clock.advance(1000);
    reporter.request();
    await settle();
    expect(sent).toHaveLength(3);
  });

  it('a report that failed is not taken as sent: the same text goes out again', async () => {
    const { reporter, sent, answers, failing } = setup();
    failing(true);
    reporter.request();
    await settle();
    failing(false);
    reporter.request();
    await settle();
    expect(sent).toHaveLength(2);
    expect(answers).toHaveLength(1);
  });

  it('debounces intermediate states: a progress report waits progressReportMs; an immediate one replaces it', async () => {
    const { clock, reporter, sent, change } = setup({ progressReportMs: 100 });
    change();
    reporter.requestProgress();
    reporter.requestProgress(); // one timer, not two
    await clock.advance(99);
    expect(sent).toHaveLength(0);
    await clock.advance(1);
    expect(sent).toHaveLength(1);

    change();
    reporter.requestProgress();
    await clock.advance(50);
    change();
    reporter.request(); // the work ended: at once, with the latest state
    await clock.advance(200);
    expect(sent).toHaveLength(2);
    expect(sent[1]!.report.manifestations).toHaveLength(3);
    expect(clock.pending).toBe(0);
  });

  it('stop drops the pending progress report and starts no new one; requested reports still go out', async () => {
    const { clock, reporter, sent, change } = setup();
    change();
    reporter.requestProgress();
    reporter.stop();
    reporter.requestProgress();
    await clock.advance(1000);
    expect(sent).toHaveLength(0);
    reporter.request();
    await reporter.settled();
    await settle();
    expect(sent).toHaveLength(1);
  });
});

describe('changedFields (the report debug line: why a report went out)', () => {
  const report: NodeReport = {
    uuid: 'n',
    era: 'e',
    host: 'h',
    instance_id: 'i',
    backend: 'fake',
    manifestations: [],
    errors: [],
  };

  it('names the fields that differ from the last report sent, added or dropped ones too', () => {
    const last = JSON.stringify({ ...report, available_bytes: 1 });
    expect(changedFields(last, { ...report, available_bytes: 2 })).toEqual(['available_bytes']);
    expect(changedFields(last, report)).toEqual(['available_bytes']);
    expect(changedFields(JSON.stringify(report), { ...report, volumes: [] })).toEqual(['volumes']);
    expect(changedFields(JSON.stringify(report), report)).toEqual([]);
  });

  it('the first report: every field', () => {
    expect(changedFields('', report)).toEqual([
      'backend',
      'era',
      'errors',
      'host',
      'instance_id',
      'manifestations',
      'uuid',
    ]);
  });
});
