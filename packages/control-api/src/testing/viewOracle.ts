/**
 * Shared by the view tests (nodeViews, nodeViews.local, Views): an in-memory control state, views
 * compared order-insensitively, and simulated agents that follow their view by deltas. Test-only: not
 * exported from ./index (it uses jest's expect).
 */
import winston from 'winston';
import { applyClusterDelta, ClusterDelta, ClusterSnapshot } from '@flocker/api';
import { MemoryConfigurationStore } from '../ConfigurationStore';
import { ControlState } from '../ControlState';
import type { Views } from '../Views';

export const silentLogger = winston.createLogger({ silent: true });

/** A control state on a memory store (nodes time out after 10 s; liveness checked only when asked). */
export async function openMemoryState(now?: () => number): Promise<ControlState> {
  return ControlState.open({
    store: new MemoryConfigurationStore(),
    nodeTimeoutMs: 10_000,
    logger: silentLogger,
    ...(now !== undefined ? { now } : {}),
    livenessCheckMs: 60_000,
  });
}

type Keyed = { dataset_id?: string; uuid?: string };
const byKey = (a: Keyed, b: Keyed): number =>
  String(a.dataset_id ?? a.uuid).localeCompare(String(b.dataset_id ?? b.uuid));

/** The view with its lists in one order (an incremental index or a delta may list an entry last). */
export function sortedView(snap: ClusterSnapshot): ClusterSnapshot {
  return {
    ...snap,
    datasets: [...snap.datasets].sort(byKey),
    leases: [...snap.leases].sort(byKey),
    nodes: [...snap.nodes].sort(byKey),
    ...(snap.peers !== undefined ? { peers: [...snap.peers].sort(byKey) } : {}),
  };
}

/**
 * Order-insensitive (a delta appends what it adds), generation and tag included. A node's
 * last_seen is left out: a report saying nothing new moves it without waking anyone.
 */
export function normalView(snap: ClusterSnapshot): unknown {
  const sorted = sortedView(snap);
  return { ...sorted, nodes: sorted.nodes.map(({ last_seen: _s, ...rest }) => rest) };
}

/** The view without what changes with every generation (for "this view did not change"). */
export function viewContent(snap: ClusterSnapshot): unknown {
  const { generation: _g, configuration_tag: _t, ...rest } = normalView(snap) as ClusterSnapshot;
  return rest;
}

/** The whole cluster's snapshot as Views answers it (what the plugins' whole watch starts with). */
export const wholeView = (views: Views): ClusterSnapshot =>
  ClusterSnapshot.parse(JSON.parse(views.snapshot().toString()));

/** A delta answer (Views.deltaFor's JSON, given: the test expects one), parsed. */
export const parseDelta = (json: string | undefined): ClusterDelta => ClusterDelta.parse(JSON.parse(json as string));

/**
 * Simulated agents on the given nodes, each holding the merged view as of its last answer. poll(node)
 * checks a node not woken has an unchanged view, and that the delta merged onto what it held equals
 * the whole view (or takes the whole view where no delta is answered).
 */
export function viewFollowers(
  state: ControlState,
  views: Views,
  nodes: readonly string[],
): { full: (node: string) => ClusterSnapshot; poll: (node: string) => void } {
  const full = (node: string): ClusterSnapshot => ClusterSnapshot.parse(JSON.parse(views.snapshotFor(node)));
  const held = new Map<string, ClusterSnapshot>(nodes.map((node) => [node, full(node)]));
  const poll = (node: string): void => {
    const prev = held.get(node) as ClusterSnapshot;
    const now = full(node);
    // Not woken: right only if nothing in its view changed.
    if (!state.nodeViews.changedSince(node, prev.generation)) expect(viewContent(now)).toEqual(viewContent(prev));
    const answer = views.deltaFor(node, prev.generation);
    if (answer === undefined) {
      held.set(node, now);
      return;
    }
    const merged = applyClusterDelta(prev, ClusterDelta.parse(JSON.parse(answer)));
    expect(merged).toBeDefined();
    expect(normalView(merged as ClusterSnapshot)).toEqual(normalView(now));
    held.set(node, merged as ClusterSnapshot);
  };
  return { full, poll };
}
