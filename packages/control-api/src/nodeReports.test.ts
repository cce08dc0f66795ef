/** The parts ControlState is composed of, alone, on an injected clock. */
import winston from 'winston';
import type { NodeReport } from '@flocker/api';
import { emptyConfiguration } from './configuration';
import { EventRing } from './events';
import { CONTAINER_REPORT_STALE_MS, NodeReports } from './nodeReports';
import { ChangeNotifier } from './notifier';

const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const T = 10_000;
const silent = winston.createLogger({ silent: true });
const report = (host = '10.0.0.1'): NodeReport => ({
  uuid: A,
  era: 'e',
  host,
  instance_id: 'i-a',
  backend: 'loopback',
  manifestations: [],
  errors: [],
});

function nodes(clock: { t: number }) {
  const calls = { state: 0, dead: 0 };
  const events = new EventRing();
  const n = new NodeReports({
    nodeTimeoutMs: T,
    now: () => clock.t,
    startedAt: clock.t,
    logger: silent,
    events,
    configuration: () => emptyConfiguration,
    onStateChange: () => (calls.state += 1),
    onDeadNodesChanged: () => (calls.dead += 1),
  });
  return { n, calls, events };
}

describe('NodeReports', () => {
  it('a repeated report moves no generation; silence past the timeout declares the node dead, a report brings it back', () => {
    const clock = { t: 1_000_000 };
    const { n, calls, events } = nodes(clock);
    n.record(report(), clock.t);
    n.record(report(), clock.t);
    expect([n.generation, calls.state]).toEqual([1, 1]);
    clock.t += T + 1;
    n.checkLiveness(clock.t);
    expect(n.deadSince(A, clock.t)).toBe(1_000_000 + T);
    expect(events.list().map((e) => e.kind)).toEqual(['node_dead']);
    n.record(report(), clock.t);
    expect(n.deadSince(A, clock.t)).toBeUndefined();
    expect(events.list().map((e) => e.kind)).toEqual(['node_dead', 'node_back']);
    expect(calls.dead).toBe(2);
  });

  it('takes a report from another replica with the last_seen it holds when it carries a later configuration version', () => {
    // Replica two shared a version-only report's old JSON at t (a refresh put), then, on noting a move onto the
    // node, the same report with its newer version and the same last_seen (ControlState.noteMove's reshare).
    const clock = { t: 1_000_000 };
    const { n } = nodes(clock);
    n.external({ ...report(), configuration_version: 5 }, clock.t - 10);
    n.external({ ...report(), configuration_version: 5 }, clock.t);
    n.external({ ...report(), configuration_version: 7 }, clock.t);
    expect(n.configurationVersion(A)).toBe(7);
    // Not the other way, nor a same-time repeat.
    n.external({ ...report(), configuration_version: 6 }, clock.t);
    expect(n.configurationVersion(A)).toBe(7);
  });

  it('keeps container reports beside node reports: fresh ones only, and an older report from another replica does not replace a newer one', () => {
    const clock = { t: 5_000_000 };
    const { n } = nodes(clock);
    n.recordContainers(A, { containers: [{ name: 'db', image: 'busybox', running: true }] }, clock.t);
    n.externalContainers(A, { containers: [] }, clock.t - 1);
    expect(n.containerStates(clock.t)).toEqual([
      { name: 'db', node_uuid: A, image: 'busybox', running: true, reported_at: new Date(clock.t).toISOString() },
    ]);
    n.externalContainers(A, { containers: [{ name: 'db', image: 'busybox', running: false }] }, clock.t + 1);
    expect(n.containerStates(clock.t + 1)).toEqual([
      { name: 'db', node_uuid: A, image: 'busybox', running: false, reported_at: new Date(clock.t + 1).toISOString() },
    ]);
    expect(n.containerStates(clock.t + 2 + CONTAINER_REPORT_STALE_MS)).toEqual([]);
  });
});

describe('ChangeNotifier', () => {
  it('wakes a waiter once the generation moves, and releases all on close', async () => {
    let generation = 'g1';
    const notifier = new ChangeNotifier(() => generation);
    await notifier.waitForChange('g0', 60_000); // already stale: at once
    let woken = false;
    const waiting = notifier.waitForChange('g1', 60_000).then(() => (woken = true));
    expect(notifier.waiting).toBe(1);
    notifier.notify(); // unchanged: stays
    await new Promise((r) => setImmediate(r));
    expect(woken).toBe(false);
    generation = 'g2';
    notifier.notify();
    await waiting;
    expect(notifier.waiting).toBe(0);
    const held = notifier.waitForChange('g2', 60_000);
    notifier.close();
    await held;
  });
});

describe('NodeReports.claimingInstance', () => {
  it('follows each node to the instance its latest report names, its own reports and those through the store', () => {
    const clock = { t: 1_000_000 };
    const { n } = nodes(clock);
    const B = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
    const claimers = (instance: string): string[] => [...n.claimingInstance(instance)].map((x) => x.report.uuid);
    n.record(report(), clock.t);
    n.external({ ...report(), uuid: B, instance_id: 'i-b' }, clock.t);
    expect([claimers('i-a'), claimers('i-b')]).toEqual([[A], [B]]);
    // A moved to another instance; B's report through the store names A's old one.
    n.record({ ...report(), instance_id: 'i-c' }, clock.t + 1);
    n.external({ ...report(), uuid: B, instance_id: 'i-a' }, clock.t + 1);
    expect([claimers('i-a'), claimers('i-b'), claimers('i-c')]).toEqual([[B], [], [A]]);
    // Dead nodes are still listed (the check asks whether each is alive).
    clock.t += T + 10;
    n.checkLiveness(clock.t);
    expect(claimers('i-c')).toEqual([A]);
  });
});
