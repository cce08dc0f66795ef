/**
 * skipDisabledLevels and winston's child loggers (review of 85853f0): a child (logger.child(meta)) is an object
 * whose prototype is its parent, with its own write that adds its metadata; the level methods it inherits must
 * write through the child, not through the parent they were taken from.
 */
import { Writable } from 'node:stream';
import winston from 'winston';
import { skipDisabledLevels } from './logger';

function logger(level: string) {
  const lines: unknown[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()));
      done();
    },
  });
  const l = skipDisabledLevels(
    winston.createLogger({
      level,
      format: winston.format.json(),
      defaultMeta: { service: 's' },
      transports: [new winston.transports.Stream({ stream })],
    }),
  );
  return { l, lines };
}

describe('skipDisabledLevels with child loggers', () => {
  it("a child's enabled calls carry its metadata and the parent's default metadata; its dropped ones write nothing", () => {
    const { l, lines } = logger('info');
    const child = l.child({ datasetId: 'd1' });
    child.info('hello', { a: 1 });
    child.debug('hidden');
    l.info('parent');
    expect(lines).toEqual([
      { level: 'info', message: 'hello', a: 1, datasetId: 'd1', service: 's' },
      { level: 'info', message: 'parent', service: 's' },
    ]);
  });

  it("a child follows its parent's level changed later", () => {
    const { l, lines } = logger('warn');
    const child = l.child({ c: true });
    child.info('hidden');
    l.level = 'debug';
    child.debug('shown');
    expect(lines).toEqual([{ level: 'debug', message: 'shown', c: true, service: 's' }]);
  });

  it('a level method called detached (const { info } = logger) still logs, as winston allows', () => {
    const { l, lines } = logger('info');
    const { info } = l;
    info('detached');
    expect(lines).toEqual([{ level: 'info', message: 'detached', service: 's' }]);
  });
});
