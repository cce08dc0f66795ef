/**
 * Review R2-6 (session 21): since eb366bf the node report shows a lifted ('recovered') fence for an hour only, and the
 * agent started the fence's victims only while it did: a start failing for longer (dockerd down, a volume not
 * mountable yet) left them stopped for good. The agent now remembers the last lift it saw (withRememberedLift).
 */
import type { NodeState } from '@flocker/api';
import { ManualClock } from '@flocker/runtime/testing';
import winston from 'winston';
import type { ObservedContainer } from './calculateContainerChanges';
import { ContainerAgent } from './ContainerAgent';
import { desiredContainers } from './desiredContainers';
import type { ContainerRuntime } from './DockerOps';
import { type LiftedFence, type NodeFence, withRememberedLift } from './fence';
import { D1, dbClient, dbContainer, ME, meNodeState, SINCE } from './testing/fence';

const MIN = 60_000;

describe('withRememberedLift', () => {
  const lift = (since: number, ...stopped: string[]): LiftedFence => ({
    kind: 'lifted',
    since,
    stopped: new Set(stopped),
  });
  const none: NodeFence = { kind: 'none' };
  const fenced: NodeFence = { kind: 'fenced', since: SINCE + 5, stopped: new Set(['web']) };
  const dead: NodeFence = { kind: 'fenced' };
  const old = lift(SINCE, 'db');
  const newer = lift(SINCE + 5, 'web');

  test.each<[string, NodeFence, LiftedFence | undefined, NodeFence, LiftedFence | undefined]>([
    ['none, nothing remembered: none', none, undefined, none, undefined],
    ['a lift seen: acted on and remembered', old, undefined, old, old],
    ['the report no longer shows it: the remembered lift', none, old, old, old],
    ['a newer lift replaces it', newer, old, newer, newer],
    ['fenced again: fenced, the lift still remembered', fenced, old, fenced, old],
    ['declared dead: fenced', dead, old, dead, old],
  ])('%s', (_, seen, remembered, fence, lastLift) => {
    expect(withRememberedLift(seen, remembered)).toEqual({ fence, lastLift });
  });
});

describe('ContainerAgent: a fence victim whose start fails past the hour the lift is shown', () => {
  const db = dbContainer('never');
  const client = dbClient(db);
  const fencing = {
    state: 'recovered' as const,
    since: new Date(SINCE).toISOString(),
    reason: 'no confirmed configuration',
    stopped_containers: ['db'],
  };
  const node = (withFence: boolean): NodeState => meNodeState(withFence ? { fencing } : {});

  const desiredHash = (): string =>
    desiredContainers(
      ME,
      [db],
      [{ dataset_id: D1, primary: ME, metadata: { name: 'dbvol' }, deleted: false }],
      [{ uuid: ME, host: '10.0.0.1' }],
    ).desired[0]!.hash;

  function setup() {
    const log: string[] = [];
    let dockerUp = false;
    // Ran before the fence began, killed by it.
    let container: ObservedContainer = {
      id: 'c1',
      name: 'db',
      hash: desiredHash(), // the configured spec's: started again, not recreated
      state: 'exited',
      image: 'tiny',
      startedAt: SINCE - MIN,
      finishedAt: SINCE + 300,
    };
    const runtime: ContainerRuntime = {
      list: async () => [{ ...container }],
      create: async () => {
        log.push('create');
      },
      start: async (id) => {
        if (!dockerUp) throw new Error('error while mounting volume: no such device');
        log.push(`start ${id}`);
        container = { ...container, state: 'running', startedAt: SINCE + 90 * MIN };
      },
      remove: async () => {
        log.push('remove');
      },
    };
    const clock = new ManualClock();
    const agent = new ContainerAgent({
      client,
      runtime,
      nodeUuid: ME,
      logger: winston.createLogger({ silent: true }),
      clock,
    });
    return {
      agent,
      clock,
      log,
      up: () => {
        dockerUp = true;
      },
    };
  }

  test('the lift seen, the start failing for over an hour: started once it can be, after the report dropped it', async () => {
    const s = setup();
    expect(await s.agent.converge({ nodes: [node(true)] })).toBe(false); // start fails
    await s.clock.advance(61 * MIN);
    expect(await s.agent.converge({ nodes: [node(false)] })).toBe(false); // report aged out; start still fails
    s.up();
    await s.clock.advance(2 * MIN);
    expect(await s.agent.converge({ nodes: [node(false)] })).toBe(true);
    expect(s.log).toEqual(['start c1']);
    // Once it ran, the remembered lift no longer names it: a later exit is its own.
    await s.clock.advance(2 * MIN);
    expect(await s.agent.converge({ nodes: [node(false)] })).toBe(true);
    expect(s.log).toEqual(['start c1']);
  });

  test('an agent that never saw the lift (not running while it was shown) does not start it (documented)', async () => {
    const s = setup();
    s.up();
    expect(await s.agent.converge({ nodes: [node(false)] })).toBe(true);
    expect(s.log).toEqual([]);
  });
});
