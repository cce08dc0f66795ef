/**
 * What the liveness check allocates (issue 23): it runs every second over every node's report, so at 10,000 nodes a
 * for-of over the Map's entries (an entry array and an iterator result per node: the function runs too seldom to be
 * optimized into none) was ~1 MB a second of garbage for the scavenger, whatever the cluster did.
 */
import { randomUUID } from 'node:crypto';
import winston from 'winston';
import { emptyConfiguration } from './configuration';
import { EventRing } from './events';
import { NodeReports } from './nodeReports';
import { allocatedUnder } from './testing/allocation';

describe('NodeReports.checkLiveness allocation', () => {
  it('walks 10,000 live nodes without allocating per node', async () => {
    const clock = { t: 1_000_000 };
    const n = new NodeReports({
      nodeTimeoutMs: 60_000,
      now: () => clock.t,
      startedAt: clock.t,
      logger: winston.createLogger({ silent: true }),
      events: new EventRing(),
      configuration: () => emptyConfiguration,
      onStateChange: () => undefined,
      onDeadNodesChanged: () => undefined,
    });
    for (let i = 0; i < 10_000; i++)
      n.record(
        {
          uuid: randomUUID(),
          era: 'e',
          host: `10.0.${i >> 8}.${i & 255}`,
          instance_id: `i-${i}`,
          backend: 'loopback',
          manifestations: [],
          errors: [],
        },
        clock.t,
      );
    n.checkLiveness(clock.t);
    const calls = 10;
    const bytes = await allocatedUnder('checkLiveness', () => {
      for (let i = 0; i < calls; i++) n.checkLiveness((clock.t += 1_000));
    });
    // Nothing changed, nobody died: a few small arrays per call, not one entry per node (~640 KB).
    expect(bytes / calls).toBeLessThan(16 * 1024);
    expect(n.deadSince(randomUUID(), clock.t)).toBeUndefined();
  });
});
