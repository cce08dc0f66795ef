import * as path from 'node:path';
import { Writable } from 'node:stream';
import winston from 'winston';
import { logToFullDisk } from '@flocker/runtime/testing';
import { skipDisabledLevels } from './logger';

describe('createAgentLogger', () => {
  it('keeps the agent running when its log output is a full disk (/dev/full: every write fails with ENOSPC)', () => {
    expect(logToFullDisk(path.join(__dirname, 'logger.js'), 'createAgentLogger')).toEqual({ status: 42, stderr: '' });
  });
});

describe('skipDisabledLevels', () => {
  function logger(level: string) {
    const lines: string[] = [];
    let formatted = 0;
    const count = winston.format((info) => (formatted++, info));
    const stream = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const l = skipDisabledLevels(
      winston.createLogger({
        level,
        format: winston.format.combine(count(), winston.format.json()),
        transports: [new winston.transports.Stream({ stream })],
      }),
    );
    return { l, lines, formatted: () => formatted };
  }

  it('drops a call below the level before the format, and logs the others as before', () => {
    const { l, lines, formatted } = logger('info');
    l.debug('not shown', { a: 1 });
    l.debug('not shown either');
    expect(formatted()).toBe(0);
    l.info('shown', { a: 1 });
    l.warn('warned');
    l.error('failed', { code: 'X' });
    expect(formatted()).toBe(3);
    expect(lines.map((x) => JSON.parse(x) as unknown)).toEqual([
      { level: 'info', message: 'shown', a: 1 },
      { level: 'warn', message: 'warned' },
      { level: 'error', message: 'failed', code: 'X' },
    ]);
  });

  it('follows a level changed later', () => {
    const { l, lines } = logger('warn');
    l.info('hidden');
    l.level = 'debug';
    l.debug('now shown', { b: 2 });
    expect(lines.map((x) => JSON.parse(x) as unknown)).toEqual([{ level: 'debug', message: 'now shown', b: 2 }]);
  });
});
