/** The agent reports its storage zone and its backend's free bytes (issue 19: CSI topology and GetCapacity). */
import { ManualClock } from '@flocker/runtime/testing';
import { AVAILABLE_BYTES_STEP } from './capacity';
import { DatasetAgent } from './DatasetAgent';
import type { DatasetAgentOptions } from './DatasetAgentOptions';
import { testAgentOptions } from './testing/agentOptions';
import { FakeControl, FakeDriver, FakeHost } from './testing/fakes';

function setup(extra: Partial<DatasetAgentOptions>) {
  const clock = new ManualClock();
  const control = new FakeControl(clock);
  const agent = new DatasetAgent(
    testAgentOptions({ driver: new FakeDriver(), hostOps: new FakeHost(), control, clock, ...extra }),
  );
  const eventually = (check: () => boolean, ms = 5000): Promise<number> => clock.advanceUntil(check, ms, 5);
  return { control, agent, clock, eventually };
}

describe('DatasetAgent: zone and available_bytes in its reports', () => {
  it('reports neither when the backend knows neither', async () => {
    const { control, agent, eventually } = setup({});
    agent.start();
    // The first full report (a liveness-only one goes before the first look: DatasetAgent.liveness).
    await eventually(() => control.last() !== undefined && control.last()?.backend_unseen === undefined);
    expect(control.last()).not.toHaveProperty('zone');
    expect(control.last()).not.toHaveProperty('available_bytes');
    await agent.stop();
  });

  it('reports the zone, and the free bytes in whole steps as looked at each turn; a failed look reports no figure', async () => {
    let free: number | Error = 5 * AVAILABLE_BYTES_STEP + 123;
    const { control, agent, clock, eventually } = setup({
      zone: 'pool-1',
      availableBytes: async () => {
        if (free instanceof Error) throw free;
        return free;
      },
    });
    agent.start();
    // The first full report (a liveness-only one goes before the first look: DatasetAgent.liveness).
    await eventually(() => control.last() !== undefined && control.last()?.backend_unseen === undefined);
    expect(control.last()).toMatchObject({ zone: 'pool-1', available_bytes: 5 * AVAILABLE_BYTES_STEP });
    free = 2 * AVAILABLE_BYTES_STEP;
    await eventually(() => control.last()?.available_bytes === 2 * AVAILABLE_BYTES_STEP);
    // A small change inside one step is no new report.
    const reports = control.reports.length;
    free = 2 * AVAILABLE_BYTES_STEP + 1;
    await clock.advance(150); // less than the 200 ms resync: a turn, but the same report
    expect(control.reports.slice(reports).every((r) => r.available_bytes === 2 * AVAILABLE_BYTES_STEP)).toBe(true);
    free = new Error('statfs: EIO');
    await eventually(() => control.last() !== undefined && !('available_bytes' in (control.last() ?? {})));
    expect(control.last()).toMatchObject({ zone: 'pool-1' });
    await agent.stop();
  });
});
