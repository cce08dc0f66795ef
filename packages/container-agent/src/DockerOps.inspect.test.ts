/**
 * What the agent reads from `docker inspect` for an exited, restarting or recently started container (TD-1): a
 * container Docker started again between the list and the inspect has ExitCode 0 (reset at the start), which is not
 * its last exit: left out, so a crash loop is never reported as "exited with code 0".
 */
import { inspected } from './DockerOps';

const CREATED = '2026-12-06T12:00:00.000000000Z';
const state = (over: Record<string, unknown>) => ({
  Created: CREATED,
  RestartCount: 4,
  State: {
    Running: false,
    Restarting: true,
    ExitCode: 3,
    StartedAt: '2026-12-06T12:00:05Z',
    FinishedAt: '2026-12-06T12:00:06Z',
    ...over,
  },
});

describe('inspected', () => {
  test('an exited or restarting container: its exit code, restarts and times', () => {
    expect(inspected(state({}))).toEqual({
      createdAt: Date.parse(CREATED),
      exitCode: 3,
      restartCount: 4,
      startedAt: Date.parse('2026-12-06T12:00:05Z'),
      finishedAt: Date.parse('2026-12-06T12:00:06Z'),
    });
  });

  test('running again by the time of the inspect: no exit code (Docker reset it to 0 at the start)', () => {
    expect(inspected(state({ Running: true, Restarting: false, ExitCode: 0 }))).not.toHaveProperty('exitCode');
  });

  test('what it cannot read: nothing', () => {
    expect(inspected({ State: 'x' })).toEqual({});
    expect(inspected({ State: { FinishedAt: '0001-01-01T00:00:00Z' } })).toEqual({});
  });
});
