/**
 * Review T2 F3 (session 18): a container agent that stopped reporting (SIGKILLed, or never started) was nowhere to be
 * seen: `flocker containers list` showed its last report as the state now, `flocker-deploy --wait` timed out with no
 * reason. A report older than two report intervals while its node is alive (its dataset agent reports) says so.
 */
import { A, B, node } from '@flocker/web-ui/testing';
import type { ContainerState } from '@flocker/api';
import { containerText, containerViews } from './containers';
import { agentSilenceText, CONTAINER_AGENT_SILENCE_MS, silentContainerAgent } from './containersAgentSilence';
import { containerConfig } from './testing/containers';

const NOW = Date.parse('2026-12-06T05:30:00.000Z');
const at = (msAgo: number) => new Date(NOW - msAgo).toISOString();
const writer = containerConfig('writer', A, 'tiny');
const report = (msAgo: number | undefined, over: Partial<ContainerState> = {}): ContainerState => ({
  name: 'writer',
  node_uuid: A,
  image: 'tiny',
  running: true,
  ...(msAgo !== undefined ? { reported_at: at(msAgo) } : {}),
  ...over,
});
const nodes = [node(A, '10.77.0.11'), node(B, '10.77.0.12')];

describe('silentContainerAgent', () => {
  test('a live node whose container report is older than the bound: silent since then', () => {
    const old = CONTAINER_AGENT_SILENCE_MS + 1_000;
    expect(silentContainerAgent(A, [report(old)], nodes, NOW, true)).toEqual({
      node_uuid: A,
      host: '10.77.0.11',
      since: at(old),
    });
    expect(agentSilenceText({ node_uuid: A, host: '10.77.0.11', since: at(old) })).toBe(
      `no report from the container agent on host 10.77.0.11 since ${at(old)}: is it running?`,
    );
  });
  test('a fresh report, or one from a service that gives no time: not silent', () => {
    expect(silentContainerAgent(A, [report(1_000)], nodes, NOW, true)).toBeUndefined();
    expect(silentContainerAgent(A, [report(undefined)], nodes, NOW, true)).toBeUndefined();
  });
  test('the newest report of the node counts', () => {
    const old = report(CONTAINER_AGENT_SILENCE_MS + 5_000, { name: 'side' });
    expect(silentContainerAgent(A, [old, report(500)], nodes, NOW, true)).toBeUndefined();
  });
  test('containers configured on a live node that reports none of them: no report, time unknown', () => {
    expect(silentContainerAgent(A, [], nodes, NOW, true)).toEqual({ node_uuid: A, host: '10.77.0.11', since: null });
    expect(agentSilenceText({ node_uuid: A, host: '10.77.0.11', since: null })).toBe(
      'no report from the container agent on host 10.77.0.11: is it running?',
    );
    // Nothing configured there: an agent with nothing to run reports nothing either.
    expect(silentContainerAgent(A, [], nodes, NOW, false)).toBeUndefined();
  });
  test('a dead node is not a silent container agent (the node is dead: said elsewhere)', () => {
    const dead = [node(A, '10.77.0.11', { alive: false })];
    expect(silentContainerAgent(A, [report(CONTAINER_AGENT_SILENCE_MS * 3)], dead, NOW, true)).toBeUndefined();
    expect(silentContainerAgent(A, [], dead, NOW, true)).toBeUndefined();
  });
});

describe('containers list/show with a silent container agent', () => {
  test('its last report is not the state now: unknown, and show says why', () => {
    const old = CONTAINER_AGENT_SILENCE_MS + 1_000;
    const [view] = containerViews([writer], [report(old)], nodes, [], NOW);
    expect(view?.state).toBe('unknown');
    expect(view?.last_reported).toBe('running');
    expect(view?.silent_agent).toEqual({ node_uuid: A, host: '10.77.0.11', since: at(old) });
    expect(containerText(view!)).toContain(
      `State:      unknown (no report from the container agent on host 10.77.0.11 since ${at(old)}: is it running?; last reported running)`,
    );
  });
  test('never reported on its live node: pending, and show asks whether the agent runs', () => {
    const [view] = containerViews([writer], [], nodes, [], NOW);
    expect(view?.state).toBe('pending');
    expect(containerText(view!)).toContain(
      'State:      pending (no report from the container agent on host 10.77.0.11: is it running?)',
    );
  });
  test('a fresh report: as before', () => {
    const [view] = containerViews([writer], [report(1_000)], nodes, [], NOW);
    expect(view?.state).toBe('running');
    expect(view?.silent_agent).toBeNull();
    expect(containerText(view!)).toContain('State:      running\n');
  });
});
