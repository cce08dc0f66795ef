/**
 * Issue 23: `docker volume rm` waits on the plugin's Remove, whose own part after the durable DELETE is nothing but
 * its log line — a synchronous write to the plugin's output, slow on a busy disk. The line is written once Docker
 * has its answer (Remove resolved), for a volume just created (the benchmark's rm) and for one whose lease the plugin
 * kept idle (the DELETE that ends that lease in its own change). Against a real control service (in-process) with a
 * fake agent.
 */
import * as winston from 'winston';
import { BackendTestBed, HOST_A, NODE_A } from './testing';

const REMOVED = 'removed volume; the agent destroys its storage in the background';

describe("Remove's log line is written after its answer (issue 23)", () => {
  let bed: BackendTestBed;
  beforeEach(async () => {
    bed = await BackendTestBed.start('flocker-remove-answer-', [HOST_A]);
  });
  afterEach(() => bed.close());

  /** A silent logger whose info lines are recorded with whether Remove had answered when each was written. */
  function recording(state: { answered: boolean }): {
    logger: winston.Logger;
    lines: { message: string; answered: boolean }[];
  } {
    const logger = winston.createLogger({ silent: true });
    const lines: { message: string; answered: boolean }[] = [];
    const info = logger.info.bind(logger);
    logger.info = ((message: string, ...meta: unknown[]) => {
      lines.push({ message, answered: state.answered });
      return info(message, ...meta);
    }) as winston.LeveledLogMethod;
    return { logger, lines };
  }

  async function removeAndSettle(remove: () => Promise<void>, state: { answered: boolean }): Promise<void> {
    state.answered = false;
    await remove().then(() => {
      state.answered = true;
    });
    // The line follows within a turn of the event loop.
    await new Promise((r) => setImmediate(r));
  }

  it('a volume just created: removed, and its line written after the answer', async () => {
    const state = { answered: false };
    const { logger, lines } = recording(state);
    const b = await bed.backend(NODE_A, { logger });
    await b.create({ Name: 'fresh' });
    await removeAndSettle(() => b.remove({ Name: 'fresh' }), state);
    expect(lines.filter((l) => l.message === REMOVED)).toEqual([{ message: REMOVED, answered: true }]);
    expect((await bed.client.listDatasets()).find((d) => d.metadata.name === 'fresh')?.deleted).toBe(true);
  });

  it('a volume whose lease is kept idle: deleted with its lease in one change, the line after the answer', async () => {
    const state = { answered: false };
    const { logger, lines } = recording(state);
    const b = await bed.backend(NODE_A, { logger });
    await b.create({ Name: 'used' });
    await b.mount({ Name: 'used', ID: 'c1' });
    await b.unmount({ Name: 'used', ID: 'c1' });
    expect(b.keptIdle()).toHaveLength(1);
    await removeAndSettle(() => b.remove({ Name: 'used' }), state);
    expect(lines.filter((l) => l.message === REMOVED)).toEqual([{ message: REMOVED, answered: true }]);
    const after = await bed.client.listDatasets();
    const d = after.find((x) => x.metadata.name === 'used');
    expect(d?.deleted).toBe(true);
    expect((await bed.client.listLeases()).some((l) => l.dataset_id === d?.dataset_id)).toBe(false);
  });
});
