/**
 * A node's own report is not echoed to its own watch (issue 23, agentWatch.ts): a `docker volume create` + `rm` cost
 * its agent two lines carrying only what it had just reported. Other watchers still get it; the next line is a delta
 * from the agent's base; a reconnect, a restart, and a change the service made to the node's state are still sent.
 */
import { applyClusterDelta, ClusterAnswer, ClusterDelta, ClusterSnapshot, isClusterDelta } from '@flocker/api';
import { createDataset, deleteDataset } from './configuration';
import type { ControlState } from './ControlState';
import type { StreamSink } from './routeSpec';
import { Views } from './Views';
import { watchNode } from './agentWatch';
import { WHOLE_CLUSTER } from './nodeViews';
import { A, B, D1, D2, letterReport as report, mountedManifestation, T0 } from './testing/fixtures';
import { normalView, openMemoryState } from './testing/viewOracle';

/** A watch's lines as they come (heartbeats left out), parsed; `end` aborts it. */
interface Followed {
  readonly answers: ClusterAnswer[];
  end(): void;
}

function follow(state: ControlState, views: Views, node: string, since?: string): Followed {
  const abort = new AbortController();
  const answers: ClusterAnswer[] = [];
  const sink: StreamSink = {
    signal: abort.signal,
    write(chunk: Buffer | string): boolean {
      const line = chunk.toString().trim();
      if (line !== '') answers.push(ClusterAnswer.parse(JSON.parse(line)));
      return true;
    },
    drained: () => Promise.resolve(),
    end: () => undefined,
  };
  watchNode(state, views, node, since, sink, 60_000);
  return { answers, end: () => abort.abort() };
}

/** Polls `done` (a turn of the event loop at a time) for up to 10 s: the notifier wakes watchers on the next turn. */
async function until(done: () => boolean): Promise<void> {
  for (let waited = 0; !done(); waited += 5) {
    if (waited > 10_000) throw new Error('condition not met within 10 s');
    await new Promise((r) => setTimeout(r, 5));
  }
}

const holds = (a: ClusterAnswer, node: string, id: string): boolean =>
  a.nodes.some((n) => n.uuid === node && n.manifestations.some((m) => m.dataset_id === id));
const shows = (a: ClusterAnswer, id: string, deleted = false): boolean =>
  a.datasets.some((d) => d.dataset_id === id && d.deleted === deleted);
/** A delta carrying nothing but `node`'s own state: its report echoed back. */
const isEcho = (a: ClusterAnswer, node: string): boolean =>
  isClusterDelta(a) &&
  a.datasets.length === 0 &&
  a.removed_datasets.length === 0 &&
  a.leases.length === 0 &&
  a.removed_leases.length === 0 &&
  a.removed_nodes.length === 0 &&
  a.snapshots === undefined &&
  a.nodes.length > 0 &&
  a.nodes.every((n) => n.uuid === node);

/** The view a follower holds: its first answer with every delta after it merged (each must apply: no gap). */
function merged(answers: readonly ClusterAnswer[]): ClusterSnapshot {
  const [first, ...rest] = answers;
  if (first === undefined || isClusterDelta(first)) throw new Error('a watch from no generation starts whole');
  let view: ClusterSnapshot = first;
  for (const a of rest) {
    expect(isClusterDelta(a)).toBe(true);
    expect((a as ClusterDelta).since).toBe(view.generation);
    const next = applyClusterDelta(view, a as ClusterDelta);
    expect(next).toBeDefined();
    view = next as ClusterSnapshot;
  }
  return view;
}

describe("a node's own report on its own watch", () => {
  let state: ControlState;
  let views: Views;
  const clock = { now: T0 };
  const watches: Followed[] = [];
  const watch = (node: string, since?: string): Followed => {
    const w = follow(state, views, node, since);
    watches.push(w);
    return w;
  };
  beforeEach(async () => {
    clock.now = T0;
    state = await openMemoryState(() => clock.now);
    await state.report(report(A));
    await state.report(report(B));
    views = new Views(state);
  });
  afterEach(async () => {
    for (const w of watches.splice(0)) w.end();
    await state.close();
  });

  it('a create and an rm write no echo to the reporting node; the whole cluster gets every report; deltas chain', async () => {
    const own = watch(A);
    const whole = watch(WHOLE_CLUSTER);
    await until(() => own.answers.length === 1 && whole.answers.length === 1);
    // docker volume create: the dataset configured, then the agent's report of it mounted.
    await state.mutate((c, now) => createDataset(c, { dataset_id: D1, primary: A }, undefined, undefined, now));
    await until(() => own.answers.some((a) => shows(a, D1)));
    await state.report(report(A, { manifestations: [mountedManifestation(D1, A)] }));
    await until(() => whole.answers.some((a) => holds(a, A, D1)));
    // docker volume rm: deleted, then the agent's report without it.
    await state.mutate((c, now) => deleteDataset(c, D1, now));
    await until(() => own.answers.some((a) => shows(a, D1, true)));
    await state.report(report(A));
    await until(() => whole.answers.length >= 5 && !holds(whole.answers.at(-1) as ClusterAnswer, A, D1));
    // The next change of A's view: a delta from the base A's agent holds, carrying A's state as reported.
    await state.mutate((c, now) => createDataset(c, { dataset_id: D2, primary: A }, undefined, undefined, now));
    await until(() => own.answers.some((a) => shows(a, D2)));

    expect(own.answers.filter((a) => isEcho(a, A))).toHaveLength(0);
    // Whole view, create, delete, the next create: 4 lines (6 with the two echoes).
    expect(own.answers).toHaveLength(4);
    const last = own.answers.at(-1) as ClusterDelta;
    expect(last.nodes.find((n) => n.uuid === A)?.manifestations).toEqual([]);
    expect(normalView(merged(own.answers))).toEqual(
      normalView(ClusterSnapshot.parse(JSON.parse(views.snapshotFor(A)))),
    );
    // The whole cluster's watchers (plugins, UI) get both reports.
    expect(whole.answers.filter((a) => isEcho(a, A))).toHaveLength(2);
    expect(normalView(merged(whole.answers))).toEqual(
      normalView(ClusterSnapshot.parse(JSON.parse(views.snapshot().toString()))),
    );
  });

  it("another node's watch showing the reporting node's state gets its report", async () => {
    // B holds a copy of A's dataset: B's view shows A's state.
    await state.mutate((c, now) => createDataset(c, { dataset_id: D1, primary: A }, undefined, undefined, now));
    await state.report(report(B, { manifestations: [mountedManifestation(D1, B)] }));
    const other = watch(B);
    await until(() => other.answers.length === 1);
    await state.report(report(A, { manifestations: [mountedManifestation(D1, A)] }));
    await until(() => other.answers.some((a) => holds(a, A, D1)));
    expect(other.answers).toHaveLength(2);
  });

  it('a reconnect from the base it held gets the reports since; a restarted agent the whole view', async () => {
    const own = watch(A);
    await until(() => own.answers.length === 1);
    await state.mutate((c, now) => createDataset(c, { dataset_id: D1, primary: A }, undefined, undefined, now));
    await until(() => own.answers.length === 2);
    const base = own.answers[1] as ClusterDelta;
    await state.report(report(A, { manifestations: [mountedManifestation(D1, A)] }));
    const whole = watch(WHOLE_CLUSTER);
    await until(() => whole.answers.length === 1);
    expect(own.answers).toHaveLength(2);
    own.end();
    // The watch was cut: watched again from the generation held, its first line is what changed since (its report).
    const again = watch(A, base.generation);
    await until(() => again.answers.length === 1);
    const first = again.answers[0] as ClusterDelta;
    expect(first.since).toBe(base.generation);
    expect(holds(first, A, D1)).toBe(true);
    // Restarted (no generation): the whole view, its state as last reported.
    const fresh = watch(A);
    await until(() => fresh.answers.length === 1);
    expect(isClusterDelta(fresh.answers[0] as ClusterAnswer)).toBe(false);
    expect(holds(fresh.answers[0] as ClusterAnswer, A, D1)).toBe(true);
  });

  it('a report after the service declared the node dead is sent (alive again: the service changed it)', async () => {
    const own = watch(A);
    await until(() => own.answers.length === 1);
    clock.now += 11_000;
    await state.report(report(B));
    await state.checkLiveness();
    await until(() => own.answers.some((a) => a.nodes.some((n) => n.uuid === A && !n.alive)));
    const lines = own.answers.length;
    await state.report(report(A));
    await until(() => own.answers.length > lines);
    expect((own.answers.at(-1) as ClusterAnswer).nodes.find((n) => n.uuid === A)?.alive).toBe(true);
  });

  it('a report past the node timeout (not yet declared dead) is sent: a line built meanwhile showed it dead', async () => {
    const held = { manifestations: [mountedManifestation(D1, A)] };
    await state.mutate((c, now) => createDataset(c, { dataset_id: D1, primary: A }, undefined, undefined, now));
    await state.report(report(A, held));
    const own = watch(A);
    await until(() => own.answers.length === 1);
    clock.now += 11_000;
    await state.report(report(B));
    // A change of A's view built while A is past its timeout: it shows A's state (A holds D1), dead.
    await state.mutate((c, now) => deleteDataset(c, D1, now));
    await until(() => own.answers.length === 2);
    expect((own.answers[1] as ClusterAnswer).nodes.find((n) => n.uuid === A)?.alive).toBe(false);
    await state.report(report(A, held));
    await until(() => own.answers.length === 3);
    expect((own.answers[2] as ClusterAnswer).nodes.find((n) => n.uuid === A)?.alive).toBe(true);
  });

  it('a report of another boot (a reboot: new era) is sent', async () => {
    const own = watch(A);
    await until(() => own.answers.length === 1);
    await state.report(report(A, { era: 'era-rebooted' }));
    await until(() => own.answers.length === 2);
    expect((own.answers[1] as ClusterAnswer).nodes.find((n) => n.uuid === A)?.era).toBe('era-rebooted');
  });

  it("a dataset entering or leaving the node's view by its own report (a copy of another's dataset) is sent", async () => {
    await state.mutate((c, now) => createDataset(c, { dataset_id: D1, primary: B }, undefined, undefined, now));
    const own = watch(A);
    await until(() => own.answers.length === 1);
    expect(shows(own.answers[0] as ClusterAnswer, D1)).toBe(false);
    await state.report(report(A, { manifestations: [mountedManifestation(D1, A)] }));
    await until(() => own.answers.length === 2);
    expect(shows(own.answers[1] as ClusterAnswer, D1)).toBe(true);
    await state.report(report(A));
    await until(() => own.answers.length === 3);
    expect((own.answers[2] as ClusterDelta).removed_datasets).toEqual([D1]);
  });
});
