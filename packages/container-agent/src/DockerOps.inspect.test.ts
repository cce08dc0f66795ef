/**
 * What the agent reads from `docker inspect` for an exited, restarting or recently started container (TD-1): a
 * container Docker started again between the list and the inspect has ExitCode 0 (reset at the start), which is not
 * its last exit: left out, so a crash loop is never reported as "exited with code 0".
 *
 * The fixtures are Docker's states as moby's container/state.go sets them: in the restart back-off (SetRestarting)
 * Running AND Restarting are true, ExitCode the last exit; running again (SetRunning) Running true, Restarting
 * false, ExitCode 0; exited (SetStopped) Running and Restarting false, ExitCode the exit.
 */
import { inspected } from './DockerOps';

const CREATED = '2026-12-06T12:00:00.000000000Z';
const state = (over: Record<string, unknown>) => ({
  Created: CREATED,
  RestartCount: 4,
  State: {
    Status: 'restarting',
    Running: true,
    Restarting: true,
    ExitCode: 3,
    StartedAt: '2026-12-06T12:00:05Z',
    FinishedAt: '2026-12-06T12:00:06Z',
    ...over,
  },
});
const read = {
  createdAt: Date.parse(CREATED),
  exitCode: 3,
  restartCount: 4,
  startedAt: Date.parse('2026-12-06T12:00:05Z'),
  finishedAt: Date.parse('2026-12-06T12:00:06Z'),
};

describe('inspected', () => {
  // Review FR-2: the exit code was dropped whenever Running was true, so every crash loop read "exited", no code.
  test('restarting (Running and Restarting true, as Docker shows its restart back-off): its exit code, restarts and times', () => {
    expect(inspected(state({}))).toEqual(read);
  });

  test('exited: its exit code, restarts and times', () => {
    expect(inspected(state({ Status: 'exited', Running: false, Restarting: false }))).toEqual(read);
  });

  test('running again by the time of the inspect: no exit code (Docker reset it to 0 at the start)', () => {
    expect(inspected(state({ Status: 'running', Running: true, Restarting: false, ExitCode: 0 }))).not.toHaveProperty(
      'exitCode',
    );
  });

  test('what it cannot read: nothing', () => {
    expect(inspected({ State: 'x' })).toEqual({});
    expect(inspected({ State: { FinishedAt: '0001-01-01T00:00:00Z' } })).toEqual({});
  });
});
