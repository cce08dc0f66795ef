/**
 * The commit timeline at debug level (issue 23): each commit logs where its writes' time went — waiting for the group
 * commit (queued_ms), the store (store_ms, with the store's own breakdown), and the work run before the writers'
 * answers (notify_ms, onChange) — so a slow create is told apart without a profiler. Nothing at info.
 */
import Transport from 'winston-transport';
import winston from 'winston';
import { newRegistry } from '@flocker/metrics';
import type { Applied, Configuration } from './configuration';
import { emptyConfiguration } from './configuration';
import { Committer } from './committer';
import { MemoryConfigurationStore } from './ConfigurationStore';
import { instrumentStore } from './metrics';

const bump = (c: Configuration): Applied<number> => ({
  config: { ...c, version: c.version + 1 },
  result: c.version + 1,
  status: 200,
});

class Lines extends Transport {
  readonly lines: Record<string, unknown>[] = [];
  override log(info: Record<string, unknown>, next: () => void): void {
    this.lines.push(info);
    next();
  }
}

function committer(level: string, onChange: () => void = () => undefined) {
  const lines = new Lines();
  const logger = winston.createLogger({ level, transports: [lines] });
  const store = new MemoryConfigurationStore();
  const timeline = { txn_ms: 1.5, fold_at_send: 'put chunk' };
  Object.assign(store, { lastCommitTimeline: () => timeline });
  // As the service runs it: the store wrapped for its metrics (the timeline passes through).
  const wrapped = instrumentStore(store, newRegistry('control-service'));
  const c = new Committer({ store: wrapped, logger, now: () => 0, initial: emptyConfiguration, onChange });
  return { c, lines: lines.lines };
}

it('logs each commit at debug: its writes, queued, store and notify times, and the store timeline', async () => {
  const busy = (ms: number): void => {
    const until = performance.now() + ms;
    while (performance.now() < until);
  };
  const { c, lines } = committer('debug', () => busy(5));
  await Promise.all([c.mutate(bump), c.mutate(bump)]);
  await c.mutate(bump);
  const commits = lines.filter((l) => l['message'] === 'configuration commit');
  expect(commits.map((l) => [l['version'], l['writes']])).toEqual([
    [2, 2],
    [3, 1],
  ]);
  for (const l of commits) {
    expect(l['level']).toBe('debug');
    expect(l['queued_ms']).toEqual(expect.any(Number));
    expect(l['store_ms']).toEqual(expect.any(Number));
    // onChange ran before the writers were answered: counted.
    expect(l['notify_ms']).toBeGreaterThanOrEqual(4.5);
    expect(l).toMatchObject({ txn_ms: 1.5, fold_at_send: 'put chunk' });
  }
});

it('logs nothing at info', async () => {
  const { c, lines } = committer('info');
  await c.mutate(bump);
  expect(lines).toEqual([]);
});
