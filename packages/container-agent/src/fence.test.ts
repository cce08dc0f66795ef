/**
 * The container agent and its node's self-fence (review T2 finding F1): a container the fence killed
 * runs again once the fence is lifted — never while fenced, never one whose volume is no longer this
 * node's, never one a user stopped (or that stopped by itself) after it ran again.
 */
import type { DatasetConfiguration, NodeState } from '@flocker/api';
import { ManualClock } from '@flocker/runtime/testing';
import winston from 'winston';
import {
  calculateContainerChanges,
  type ContainerChange,
  type DockerState,
  killedByFence,
  type ObservedContainer,
} from './calculateContainerChanges';
import { ContainerAgent } from './ContainerAgent';
import type { DesiredContainer, DockerSpec } from './desiredContainers';
import { desiredContainers } from './desiredContainers';
import { dockerTime, type ContainerRuntime } from './DockerOps';
import { type NodeFence, nodeFence } from './fence';
import { D1, dbClient, dbContainer, ME, meNodeState, SINCE } from './testing/fence';

const OTHER = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';

const spec = (name: string): DockerSpec => ({
  name,
  image: 'tiny',
  env: [],
  ports: [],
  volume: { name: `${name}vol`, mountpoint: '/data' },
  restartPolicy: { Name: 'always', MaximumRetryCount: 0 },
});
const want = (name: string, volumeHere = true): DesiredContainer => ({
  spec: spec(name),
  hash: `h-${name}`,
  volumeHere,
});
const seen = (name: string, state: DockerState, times: Partial<ObservedContainer> = {}): ObservedContainer => ({
  id: `id-${name}`,
  name,
  hash: `h-${name}`,
  state,
  image: 'tiny',
  ...times,
});
/** Ran before the fence began, killed after: what the fence leaves. */
const killed = { startedAt: SINCE - 60_000, finishedAt: SINCE + 300 };
const lifted = (...stopped: string[]): NodeFence => ({ kind: 'lifted', since: SINCE, stopped: new Set(stopped) });
const nodeState = meNodeState;
const show = (c: ContainerChange): string =>
  c.kind === 'create' ? `create ${c.spec.name}` : c.kind === 'start' ? `start ${c.id}` : `remove ${c.id}`;

describe('calculateContainerChanges with the node fence', () => {
  test.each<[string, DesiredContainer[], ObservedContainer[], NodeFence, string[]]>([
    [
      'killed by the fence, fence lifted: start again',
      [want('db')],
      [seen('db', 'exited', killed)],
      lifted('db'),
      ['start id-db'],
    ],
    [
      'killed by the fence, still fenced: nothing',
      [want('db')],
      [seen('db', 'exited', killed)],
      { kind: 'fenced' },
      [],
    ],
    ['exited, no fence told of: left to Docker', [want('db')], [seen('db', 'exited', killed)], { kind: 'none' }, []],
    [
      'exited, the fence names another container: left to Docker',
      [want('db')],
      [seen('db', 'exited', killed)],
      lifted('web'),
      [],
    ],
    [
      'killed by the fence, its volume moved to another node: stays stopped',
      [want('db', false)],
      [seen('db', 'exited', killed)],
      lifted('db'),
      [],
    ],
    [
      'started again after the fence, then stopped (a user, or by itself): stays stopped',
      [want('db')],
      [seen('db', 'exited', { startedAt: SINCE + 5_000, finishedAt: SINCE + 9_000 })],
      lifted('db'),
      [],
    ],
    [
      'stopped before the fence began (a user, or by itself): stays stopped',
      [want('db')],
      [seen('db', 'exited', { startedAt: SINCE - 60_000, finishedAt: SINCE - 1 })],
      lifted('db'),
      [],
    ],
    ['never ran (no start time): left alone', [want('db')], [seen('db', 'exited', {})], lifted('db'), []],
    [
      'killed, no stop time known: start again',
      [want('db')],
      [seen('db', 'exited', { startedAt: SINCE - 1 })],
      lifted('db'),
      ['start id-db'],
    ],
    ['running after the fence: nothing', [want('db')], [seen('db', 'running', killed)], lifted('db'), []],
    ['dead (Docker could not remove it): left alone', [want('db')], [seen('db', 'dead', killed)], lifted('db'), []],
    ['fenced: nothing is created', [want('db')], [], { kind: 'fenced' }, []],
    ['fenced: a never-started container is not started', [want('db')], [seen('db', 'created')], { kind: 'fenced' }, []],
    [
      'fenced: what is no longer configured here is still removed',
      [],
      [seen('db', 'exited', killed)],
      { kind: 'fenced' },
      ['remove id-db'],
    ],
    ['lifted: absent is created as always', [want('db')], [], lifted('db'), ['create db']],
    [
      'lifted: a killed container whose spec changed is recreated, not started',
      [{ ...want('db'), hash: 'h-new' }],
      [seen('db', 'exited', killed)],
      lifted('db'),
      ['remove id-db', 'create db'],
    ],
    [
      'two killed, one of them moved elsewhere meanwhile: only the other starts',
      [want('db'), want('web', false)],
      [seen('db', 'exited', killed), { ...seen('web', 'exited', killed), id: 'id-web' }],
      lifted('db', 'web'),
      ['start id-db'],
    ],
  ])('%s', (_what, desired, observed, fence, expected) => {
    expect(calculateContainerChanges(desired, observed, fence).map(show)).toEqual(expected);
  });

  test('exhaustively: never a create or start while fenced; an exited container starts only if the fence killed it and its volume is here', () => {
    const states: DockerState[] = ['created', 'running', 'paused', 'restarting', 'removing', 'exited', 'dead'];
    const times = [undefined, SINCE - 10_000, SINCE - 1, SINCE, SINCE + 1, SINCE + 10_000];
    const fences: NodeFence[] = [
      { kind: 'none' },
      { kind: 'fenced' },
      { kind: 'fenced', since: SINCE, stopped: new Set(['db']) },
      lifted(),
      lifted('db'),
      lifted('db', 'x'),
    ];
    let cases = 0;
    for (const fence of fences)
      for (const volumeHere of [true, false])
        for (const state of [...states, 'absent' as const])
          for (const startedAt of times)
            for (const finishedAt of times)
              for (const sameSpec of [true, false]) {
                cases++;
                const w = { ...want('db', volumeHere), hash: sameSpec ? 'h-db' : 'h-new' };
                const observed =
                  state === 'absent'
                    ? []
                    : [
                        seen('db', state, {
                          ...(startedAt !== undefined ? { startedAt } : {}),
                          ...(finishedAt !== undefined ? { finishedAt } : {}),
                        }),
                      ];
                const got = calculateContainerChanges([w], observed, fence);
                const acting = got.filter((c) => c.kind !== 'remove');
                if (fence.kind === 'fenced') expect(acting).toEqual([]);
                // A start of an exited container: only the fence's victims, lifted, volume here, not run since.
                const startsExited = got.some((c) => c.kind === 'start') && state === 'exited';
                const expected =
                  state === 'exited' &&
                  sameSpec &&
                  fence.kind === 'lifted' &&
                  fence.stopped.has('db') &&
                  volumeHere &&
                  startedAt !== undefined &&
                  startedAt < SINCE &&
                  (finishedAt === undefined || finishedAt >= SINCE);
                expect(startsExited).toBe(expected);
                if (state === 'exited' && sameSpec) expect(killedByFence(w, observed[0]!, fence)).toBe(expected);
                // Nothing else changes with the fence: what happens without one still happens when lifted.
                if (fence.kind === 'lifted' && !expected)
                  expect(got).toEqual(calculateContainerChanges([w], observed, { kind: 'none' }));
              }
    expect(cases).toBe(6 * 2 * 8 * 6 * 6 * 2);
  });
});

describe('nodeFence: what the node state in the snapshot says', () => {
  const state = (over: Partial<NodeState>): NodeState => nodeState(over);
  const fencing = (s: 'fenced' | 'recovered', stopped?: string[]) => ({
    state: s,
    since: '2026-12-06T05:00:00.000Z',
    reason: 'no confirmed configuration',
    ...(stopped !== undefined ? { stopped_containers: stopped } : {}),
  });

  test('not in the snapshot (no dataset agent reports it) or never fenced: none', () => {
    expect(nodeFence(ME, undefined)).toEqual({ kind: 'none' });
    expect(nodeFence(ME, [state({ uuid: OTHER, fencing: fencing('fenced') })])).toEqual({ kind: 'none' });
    expect(nodeFence(ME, [state({})])).toEqual({ kind: 'none' });
  });
  test('fencing, fenced or cleaning up, or declared dead: fenced, with what the fence stopped and since when if said', () => {
    const db = { kind: 'fenced', since: SINCE, stopped: new Set(['db']) };
    expect(nodeFence(ME, [state({ fencing: fencing('fenced', ['db']) })])).toEqual(db);
    expect(nodeFence(ME, [state({ fencing: fencing('fenced') })])).toEqual({ ...db, stopped: new Set() });
    expect(nodeFence(ME, [state({ alive: false })])).toEqual({ kind: 'fenced' });
    expect(nodeFence(ME, [state({ alive: false, fencing: fencing('recovered', ['db']) })])).toEqual(db);
    expect(nodeFence(ME, [state({ fencing: { ...fencing('fenced', ['db']), since: 'x' } })])).toEqual({
      kind: 'fenced',
    });
  });
  test('recovered and alive: lifted, with what it stopped and since when', () => {
    expect(nodeFence(ME, [state({ fencing: fencing('recovered', ['db', 'web']) })])).toEqual({
      kind: 'lifted',
      since: SINCE,
      stopped: new Set(['db', 'web']),
    });
    expect(nodeFence(ME, [state({ fencing: fencing('recovered') })])).toEqual({
      kind: 'lifted',
      since: SINCE,
      stopped: new Set(),
    });
  });
  test("a since that does not parse: none (no container can be told to be the fence's)", () => {
    expect(nodeFence(ME, [state({ fencing: { ...fencing('recovered', ['db']), since: 'x' } })])).toEqual({
      kind: 'none',
    });
  });
});

describe('desiredContainers: volumeHere', () => {
  const db = dbContainer('always');
  const nodes = [{ uuid: ME, host: '10.0.0.1' }];
  const ds = (primary: string): DatasetConfiguration[] => [
    { dataset_id: D1, primary, metadata: { name: 'dbvol' }, deleted: false },
  ];
  test('its dataset primary here: true; elsewhere: false; no volume: true', () => {
    expect(desiredContainers(ME, [db], ds(ME), nodes).desired[0]?.volumeHere).toBe(true);
    expect(desiredContainers(ME, [db], ds(OTHER), nodes).desired[0]?.volumeHere).toBe(false);
    expect(desiredContainers(ME, [{ ...db, volumes: [] }], [], nodes).desired[0]?.volumeHere).toBe(true);
  });
});

test("dockerTime: Docker's times in ms, its zero time as never", () => {
  expect(dockerTime('2026-12-06T05:00:00.123456789Z')).toBe(Date.parse('2026-12-06T05:00:00.123Z'));
  expect(dockerTime('0001-01-01T00:00:00Z')).toBeUndefined();
  expect(dockerTime(undefined)).toBeUndefined();
  expect(dockerTime('nonsense')).toBeUndefined();
});

describe('ContainerAgent.converge across a fence', () => {
  test('killed by the fence: nothing while fenced, started once lifted, once; a later stop by a user stays', async () => {
    const db = dbContainer('never');
    const client = dbClient(db);
    const log: string[] = [];
    let now = SINCE - 60_000;
    let container: ObservedContainer | undefined;
    const runtime: ContainerRuntime = {
      list: async () => (container === undefined ? [] : [{ ...container }]),
      create: async (s, hash) => {
        log.push('create');
        container = { id: 'c1', name: s.name, hash, state: 'running', image: s.image, startedAt: now };
      },
      start: async (id) => {
        log.push(`start ${id}`);
        if (container) container = { ...container, state: 'running', startedAt: now };
      },
      remove: async () => {
        log.push('remove');
        container = undefined;
      },
    };
    const agent = new ContainerAgent({
      client,
      runtime,
      nodeUuid: ME,
      logger: winston.createLogger({ silent: true }),
      clock: new ManualClock(),
    });
    const node = (fencing: NodeState['fencing'], alive = true): NodeState =>
      nodeState({ alive, ...(fencing !== undefined ? { fencing } : {}) });
    const since = new Date(SINCE).toISOString();
    const reason = 'no confirmed configuration';

    expect(await agent.converge({ nodes: [node(undefined)] })).toBe(true);
    expect(log).toEqual(['create']);
    // The fence kills it (SIGKILL through Docker, by the dataset agent).
    now = SINCE + 200;
    container = { ...container!, state: 'exited', finishedAt: now };
    const fenced = { state: 'fenced' as const, since, reason, stopped_containers: ['db'] };
    expect(await agent.converge({ nodes: [node(fenced)] })).toBe(false);
    expect(await agent.converge({ nodes: [node({ ...fenced, state: 'recovered' }, false)] })).toBe(false);
    expect(log).toEqual(['create']);
    // Lifted: started again, once.
    now = SINCE + 10_000;
    expect(await agent.converge({ nodes: [node({ ...fenced, state: 'recovered' })] })).toBe(true);
    expect(await agent.converge({ nodes: [node({ ...fenced, state: 'recovered' })] })).toBe(true);
    expect(log).toEqual(['create', 'start c1']);
    // A user stops it later (docker stop): it stays stopped, as Docker leaves it.
    container = { ...container, state: 'exited', finishedAt: SINCE + 20_000 };
    expect(await agent.converge({ nodes: [node({ ...fenced, state: 'recovered' })] })).toBe(true);
    expect(log).toEqual(['create', 'start c1']);
  });
});
