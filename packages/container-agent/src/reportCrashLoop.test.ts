/**
 * A container Docker keeps restarting is not running (review T8, TD-1): Docker's state "restarting" is the crash
 * loop's (the container exited and waits for its restart policy's back-off). It is reported running: false, with why
 * (exit code, restarts) in its error, so /v1/state/containers, `flocker containers list` and flocker-deploy --wait
 * no longer count it. An exited container says its exit code likewise.
 */
import { ContainerConfiguration, type ContainerReport } from '@flocker/api';
import { ManualClock } from '@flocker/runtime/testing';
import winston from 'winston';
import type { ObservedContainer } from './calculateContainerChanges';
import { ContainerAgent, reportOf, type AgentClient } from './ContainerAgent';
import type { DesiredContainer, DockerSpec } from './desiredContainers';
import type { ContainerRuntime } from './DockerOps';
import type { NodeFence } from './fence';
import { meNodeState } from './testing/fence';

const CREATED = Date.parse('2026-12-06T12:00:00.000Z');
const EXITED = Date.parse('2026-12-06T12:00:07.000Z');
const want: DesiredContainer = {
  spec: { name: 'crashy', image: 'tiny', env: [], ports: [], restartPolicy: { Name: 'always', MaximumRetryCount: 0 } },
  hash: 'h',
  volumeHere: true,
};
const observed = (o: Partial<ObservedContainer>): ObservedContainer => ({
  id: 'id-crashy',
  name: 'crashy',
  hash: 'h',
  state: 'running',
  image: 'tiny',
  ...o,
});

/** The control service as node `me`'s container agent sees it: crashy configured there; its reports kept. */
function agentClient(me: string): { client: AgentClient; reports: ContainerReport[] } {
  const crashy = ContainerConfiguration.parse({ name: 'crashy', node_uuid: me, image: 'tiny' });
  const reports: ContainerReport[] = [];
  const client: AgentClient = {
    waitForCluster: async () => ({ generation: 'g', configuration_tag: 'v1', datasets: [], leases: [], nodes: [] }),
    listContainers: async () => [crashy],
    listDatasets: async () => [],
    listNodes: async () => [{ uuid: me, host: '10.0.0.1' }],
    reportContainers: async (_n, r) => {
      reports.push(r);
      return { generation: 'g' };
    },
  };
  return { client, reports };
}
/** crashy's report: not running, with this Docker error. */
const notRunning = (message: string, attempts: number, since: number) => ({
  name: 'crashy',
  image: 'tiny',
  running: false,
  error: { code: 'DOCKER_ERROR', message, attempts, since: new Date(since).toISOString() },
});

describe('a container Docker keeps restarting (TD-1)', () => {
  test('is reported not running, with its last exit code and restart count', () => {
    const [c] = reportOf(
      [observed({ state: 'restarting', exitCode: 3, restartCount: 7, createdAt: CREATED, finishedAt: EXITED })],
      new Map(),
      [want],
    ).containers;
    expect(c).toEqual(
      notRunning(
        'crash loop: exited with code 3, restarted 7 times by Docker (restart policy), restarting again',
        7,
        CREATED,
      ),
    );
  });

  test('restarting before Docker counted a restart, or without what inspect tells: still not running', () => {
    const [c] = reportOf([observed({ state: 'restarting', restartCount: 0 })], new Map(), [want]).containers;
    expect(c).toMatchObject({ running: false, error: { code: 'DOCKER_ERROR', attempts: 1 } });
    expect(c?.error?.message).toMatch(/^crash loop: exited, restarted 0 times/);
    expect(c?.error?.since).toEqual(expect.any(String));
  });

  test('an exited container says its exit code unless 0; a running one has no error', () => {
    const [exited] = reportOf(
      [observed({ state: 'exited', exitCode: 3, restartCount: 0, finishedAt: EXITED })],
      new Map(),
      [want],
    ).containers;
    expect(exited).toEqual(notRunning('exited with code 3', 1, EXITED));
    // Exit code 0: stopped cleanly (a job done, or a user's stop of a process that exits 0), no error.
    expect(
      reportOf([observed({ state: 'exited', exitCode: 0, finishedAt: EXITED })], new Map(), [want]).containers,
    ).toEqual([{ name: 'crashy', image: 'tiny', running: false }]);
    // A container Docker restarted that runs again: running once up for 10 s (Docker's own rule: its restart
    // back-off starts afresh only after a run that long), or without a restart.
    const up = (since: number, restartCount: number) =>
      reportOf([observed({ state: 'running', restartCount, startedAt: since })], new Map(), [want], EXITED + 9_999)
        .containers;
    expect(up(EXITED - 1, 4)).toEqual([{ name: 'crashy', image: 'tiny', running: true }]);
    expect(up(EXITED, 0)).toEqual([{ name: 'crashy', image: 'tiny', running: true }]);
    expect(reportOf([observed({ state: 'running' })], new Map(), [want]).containers).toEqual([
      { name: 'crashy', image: 'tiny', running: true },
    ]);
  });

  test('running again for less than 10 s after Docker restarted it: still the crash loop, not running', () => {
    const [c] = reportOf(
      [observed({ state: 'running', restartCount: 4, startedAt: EXITED, createdAt: CREATED })],
      new Map(),
      [want],
      EXITED + 2_000,
    ).containers;
    expect(c).toEqual(
      notRunning('crash loop: restarted 4 times by Docker (restart policy), up again for 2 s only', 4, CREATED),
    );
  });

  test("the agent's own failure to start it wins over what Docker says", () => {
    const error = { code: 'PORT_IN_USE' as const, message: 'port taken', attempts: 2, since: 'x' };
    const failures = new Map([['crashy', { hash: 'h', image: 'tiny', error, retryAt: 0 }]]);
    expect(reportOf([observed({ state: 'exited', exitCode: 128 })], failures, [want]).containers).toEqual([
      { name: 'crashy', image: 'tiny', running: false, error },
    ]);
  });
});

describe('the report after a start (TD-1)', () => {
  /** Docker as seen after a start: the container runs for an instant, then Docker restarts it again and again. */
  class CrashingRuntime implements ContainerRuntime {
    private containers: ObservedContainer[] = [];
    constructor(private readonly clock: ManualClock) {}
    async list() {
      return this.containers.map((c) =>
        this.clock.now() > (c.startedAt ?? 0)
          ? { ...c, state: 'restarting' as const, exitCode: 3, restartCount: 1 }
          : { ...c },
      );
    }
    async create(s: DockerSpec, hash: string) {
      this.containers.push({
        id: 'id1',
        name: s.name,
        hash,
        state: 'running',
        image: s.image,
        startedAt: this.clock.now(),
      });
    }
    async start() {}
    async remove() {}
  }

  test('waits startSettleMs before looking: a container that exits at once is not reported running', async () => {
    const ME = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
    const { client, reports } = agentClient(ME);
    const clock = new ManualClock();
    const logger = winston.createLogger({ silent: true });
    const runtime = new CrashingRuntime(clock);
    const agent = new ContainerAgent({ client, runtime, nodeUuid: ME, logger, clock, startSettleMs: 1_000 });
    const turn = agent.converge();
    // The turn waits on the clock before its report; once it has passed, Docker says restarting.
    for (let i = 0; i < 10_000 && clock.pending === 0; i++) await new Promise((r) => setImmediate(r));
    expect(reports).toEqual([]);
    await clock.advance(1_000);
    await turn;
    expect(reports.map((r) => r.containers.map((c) => [c.name, c.running, c.error?.code]))).toEqual([
      [['crashy', false, 'DOCKER_ERROR']],
    ]);
  });
});

describe("the crash-loop rule reads Docker's times against the wall clock (review FR-8)", () => {
  const ME = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
  const HOUR = 3_600_000;
  /** A host whose monotonic clock (now) and wall clock differ, as after a suspend or a step of the wall clock. */
  class SkewedClock extends ManualClock {
    constructor(private readonly wallAhead: number) {
      super();
    }
    override wallNow(): number {
      return this.now() + this.wallAhead;
    }
  }
  /** Docker's view: the created container, restarted 4 times by Docker, up again since `upMs` (wall-clock times). */
  class RestartedRuntime implements ContainerRuntime {
    private containers: ObservedContainer[] = [];
    constructor(
      private readonly clock: SkewedClock,
      private readonly upMs: number,
    ) {}
    async list() {
      return this.containers;
    }
    async create(s: DockerSpec, hash: string) {
      const wall = this.clock.wallNow();
      this.containers.push({
        ...{ id: 'id1', name: s.name, hash, state: 'running' as const, image: s.image },
        ...{ restartCount: 4, createdAt: wall - HOUR, startedAt: wall - this.upMs },
      });
    }
    async start() {}
    async remove() {}
  }
  async function reported(wallAhead: number, upMs: number): Promise<ContainerReport['containers']> {
    const { client, reports } = agentClient(ME);
    const clock = new SkewedClock(wallAhead);
    const logger = winston.createLogger({ silent: true });
    const agent = new ContainerAgent({
      client,
      runtime: new RestartedRuntime(clock, upMs),
      nodeUuid: ME,
      logger,
      clock,
    });
    await agent.converge();
    expect(reports).toHaveLength(1);
    return reports[0]?.containers ?? [];
  }

  test('monotonic clock an hour behind (a suspend): up for a minute is running, no negative uptime', async () => {
    expect(await reported(HOUR, 60_000)).toEqual([expect.objectContaining({ name: 'crashy', running: true })]);
    expect((await reported(HOUR, 60_000))[0]).not.toHaveProperty('error');
  });

  test("a failure to create it: since is the wall clock's time, not the monotonic clock's", async () => {
    const { client, reports } = agentClient(ME);
    const refusing: ContainerRuntime = {
      list: async () => [],
      create: async () => {
        throw new Error('No such image: tiny');
      },
      start: async () => {},
      remove: async () => {},
    };
    const clock = new SkewedClock(HOUR);
    const logger = winston.createLogger({ silent: true });
    await new ContainerAgent({ client, runtime: refusing, nodeUuid: ME, logger, clock }).converge();
    expect(reports[0]?.containers[0]?.error).toMatchObject({
      code: 'IMAGE_NOT_FOUND',
      since: new Date(clock.wallNow()).toISOString(),
    });
  });

  test('monotonic clock an hour ahead (the wall clock stepped back): up for 2 s is still the crash loop', async () => {
    const [c] = await reported(-HOUR, 2_000);
    expect(c).toMatchObject({
      running: false,
      error: { code: 'DOCKER_ERROR', message: expect.stringMatching(/up again for 2 s only$/) },
    });
  });
});

describe("a container this node's fence stopped (review FR-3)", () => {
  const ME = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
  const SINCE = Date.parse('2026-12-06T05:00:00.000Z');
  /** Ran before the fence began, killed (SIGKILL: 137) after it: what the fence leaves. */
  const victim = observed({ state: 'exited', exitCode: 137, startedAt: SINCE - 60_000, finishedAt: SINCE + 300 });
  const fenced: NodeFence = { kind: 'fenced', since: SINCE, stopped: new Set(['crashy']) };
  const fenceError = {
    code: 'DOCKER_ERROR',
    message: "stopped by this node's fence (exit code 137): started again once the fence is lifted",
    attempts: 1,
    since: new Date(SINCE).toISOString(),
  };

  // flocker-deploy --wait takes a DOCKER_ERROR beginning "exited" (or none) for an exit of its own: with restart
  // policy never, "will not be started again", though the agent starts it again once the fence is lifted.
  test('while fenced: not reported as an exit of its own', () => {
    expect(reportOf([victim], new Map(), [want], SINCE + 10_000, fenced).containers).toEqual([
      { name: 'crashy', image: 'tiny', running: false, error: fenceError },
    ]);
    // Stopped with code 0 by the fence: still the fence's, not a clean stop without error.
    expect(reportOf([{ ...victim, exitCode: 0 }], new Map(), [want], SINCE + 10_000, fenced).containers).toEqual([
      {
        name: 'crashy',
        image: 'tiny',
        running: false,
        error: {
          ...fenceError,
          message: "stopped by this node's fence (exit code 0): started again once the fence is lifted",
        },
      },
    ]);
  });

  test("not the fence's (not named, or run again since), not started again, or no fence report: its exit, as before", () => {
    const exit = (o: ObservedContainer, fence: NodeFence) =>
      reportOf([o], new Map(), [want], SINCE + 10_000, fence).containers[0]?.error?.message;
    expect(exit(victim, { kind: 'fenced', since: SINCE, stopped: new Set(['other']) })).toBe('exited with code 137');
    expect(exit({ ...victim, startedAt: SINCE + 100 }, fenced)).toBe('exited with code 137');
    expect(exit({ ...victim, finishedAt: SINCE - 1 }, fenced)).toBe('exited with code 137');
    expect(exit(victim, { kind: 'fenced' })).toBe('exited with code 137');
    // Its volume went elsewhere meanwhile, or it is no longer configured here: not started again once lifted.
    expect(
      reportOf([victim], new Map(), [{ ...want, volumeHere: false }], SINCE, fenced).containers[0]?.error?.message,
    ).toBe('exited with code 137');
    expect(reportOf([victim], new Map(), [], SINCE, fenced).containers[0]?.error?.message).toBe('exited with code 137');
    expect(exit(victim, { kind: 'none' })).toBe('exited with code 137');
    // Lifted: the turn has started it again (or its start failed: that failure is reported); one left stopped (its
    // volume went elsewhere meanwhile) will not be started again.
    expect(exit(victim, { kind: 'lifted', since: SINCE, stopped: new Set(['crashy']) })).toBe('exited with code 137');
  });

  test("an agent turn while the node's dataset agent reports the fence (still cleaning up): the fence's message", async () => {
    const { client, reports } = agentClient(ME);
    const runtime: ContainerRuntime = {
      list: async () => [{ ...victim, hash: 'h' }],
      create: async () => {},
      start: async () => {},
      remove: async () => {},
    };
    const node = meNodeState({
      fencing: {
        state: 'fenced',
        since: new Date(SINCE).toISOString(),
        reason: 'no confirmed configuration',
        stopped_containers: ['crashy'],
      },
    });
    const logger = winston.createLogger({ silent: true });
    const agent = new ContainerAgent({ client, runtime, nodeUuid: ME, logger, clock: new ManualClock(SINCE + 10_000) });
    await agent.converge({ nodes: [node] });
    expect(reports.map((r) => r.containers.map((c) => [c.name, c.running, c.error?.message]))).toEqual([
      [['crashy', false, fenceError.message]],
    ]);
  });
});
