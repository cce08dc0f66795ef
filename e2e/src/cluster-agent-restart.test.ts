/**
 * The harness's same-era agent restart (s22, after FAIL-A): ClusterHost.startAgent() returns only once the new agent
 * process has reported to the control service, not as soon as the control service knows the era (which it did before
 * the restart: the call returned before the new process had even started). One simulated host, real control service
 * and agent; needs root.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Cluster, ClusterHost } from './cluster';
import { firstLogTime } from './cluster/agentReport';
import { clusterForSuite } from './cluster/suite';

jest.setTimeout(240_000);

let cluster: Cluster;
let a: ClusterHost;
clusterForSuite({ hosts: 1 }, (started) => {
  cluster = started;
  a = started.hosts[0] as ClusterHost;
});

function agentLogSize(): number {
  return fs.statSync(path.join(a.layout.logDir, 'agent.log')).size;
}
function agentLogFrom(offset: number): string {
  return fs.readFileSync(path.join(a.layout.logDir, 'agent.log')).subarray(offset).toString('utf8');
}

it('startAgent() after a same-era restart returns once the new process has reported (its last_seen after its first log line)', async () => {
  const era = a.era();
  const uuid = a.requireNodeUuid();
  for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
    await a.killAgent(signal);
    const from = agentLogSize();
    const called = Date.now();
    expect(await a.startAgent()).toBe(uuid);
    const returnedMs = Date.now() - called;
    // The new process had started (logged) and reported by the time the call returned.
    const startedAt = firstLogTime(agentLogFrom(from));
    expect(startedAt).toBeDefined();
    const node = (await cluster.client.waitForCluster(undefined, 0)).nodes.find((n) => n.uuid === uuid);
    expect(Date.parse(node?.last_seen ?? '')).toBeGreaterThanOrEqual(startedAt ?? Infinity);
    expect(a.era()).toBe(era);
    console.log(JSON.stringify({ signal, startAgentMs: returnedMs }));
  }
});

it('reported: false returns as before, once the era is known (for an agent that cannot reach the control service)', async () => {
  await a.killAgent('SIGKILL');
  expect(await a.startAgent({ reported: false })).toBe(a.requireNodeUuid());
  // Leave it as the suite found it: running and reporting.
  await a.killAgent('SIGKILL');
  await a.startAgent();
});
