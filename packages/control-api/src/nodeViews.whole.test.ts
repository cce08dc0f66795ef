/**
 * The whole cluster's view (issue 23, WHOLE_CLUSTER): what the Docker plugins follow, by deltas. The
 * property test of nodeViews.test follows it beside the node views; here, its log and the changes
 * that reach it without touching a dataset: liveness, a container, a lease's lifetime.
 */
import { applyClusterDelta, ClusterDelta, ClusterSnapshot } from '@flocker/api';
import { acquireLease, createDataset, releaseLease } from './configuration';
import { createContainer } from './containers';
import { ChangeLog, WHOLE_CLUSTER } from './nodeViews';
import { Views } from './Views';
import { A, B, letterReport as report } from './testing/fixtures';
import { normalView, openMemoryState as open, parseDelta as delta, wholeView as whole } from './testing/viewOracle';

describe('nodeViews: the change log of the whole cluster', () => {
  it('answers each key changed after a stamp once, by binary search; compacts; forgets with a horizon', () => {
    const log = new ChangeLog();
    expect(log.since({ cv: 0, sg: 0 })).toEqual([]);
    log.touch('d:x', { cv: 1, sg: 0 });
    log.touch('n:a', { cv: 1, sg: 1 });
    log.touch('d:x', { cv: 2, sg: 1 });
    log.touch('d:y', { cv: 2, sg: 2 });
    // In the order the keys were first touched (a follower appends new entries in the delta's order).
    expect(log.since({ cv: 1, sg: 0 })).toEqual(['d:x', 'n:a', 'd:y']);
    expect(log.since({ cv: 2, sg: 1 })).toEqual(['d:y']);
    expect(log.since({ cv: 2, sg: 2 })).toEqual([]);
    // A stamp below the last one counts as the last (an entry answered more often, never missed).
    log.touch('d:z', { cv: 1, sg: 0 });
    expect(log.since({ cv: 2, sg: 1 })).toEqual(['d:y', 'd:z']);
    // Thousands of touches of the same keys: kept at about twice the keys.
    for (let i = 0; i < 5000; i++) log.touch(i % 2 === 0 ? 'd:x' : 'w:', { cv: 3 + i, sg: 2 });
    expect(log.size).toBe(5);
    expect(log.since({ cv: 5000, sg: 2 })).toEqual(['d:x', 'w:']);
    expect(log.since({ cv: 1, sg: 0 })?.sort()).toEqual(['d:x', 'd:y', 'd:z', 'n:a', 'w:']);
    // Forgetting what left the view: a stamp before the forgotten entry gets no answer (the whole view).
    log.forget((key) => key !== 'd:y');
    expect(log.size).toBe(4);
    expect(log.since({ cv: 1, sg: 0 })).toBeUndefined();
    expect(log.since({ cv: 2, sg: 2 })?.sort()).toEqual(['d:x', 'w:']);
  });
});

describe('nodeViews: the whole cluster view', () => {
  it('a node declared dead (no report) and back: the deltas carry its state', async () => {
    let t = 1_700_000_000_000;
    const state = await open(() => t);
    try {
      await state.report(report(A));
      await state.report(report(B));
      const views = new Views(state, true);
      let view = whole(views);
      t += 11_000;
      await state.report(report(A));
      await state.checkLiveness();
      expect(state.nodeViews.changedSince(WHOLE_CLUSTER, view.generation)).toBe(true);
      const d = delta(views.deltaFor(WHOLE_CLUSTER, view.generation));
      expect(d.nodes.find((n) => n.uuid === B)).toMatchObject({ alive: false });
      view = applyClusterDelta(view, d) as ClusterSnapshot;
      expect(normalView(view)).toEqual(normalView(whole(views)));
      await state.report(report(B));
      view = applyClusterDelta(view, delta(views.deltaFor(WHOLE_CLUSTER, view.generation))) as ClusterSnapshot;
      expect(view.nodes.find((n) => n.uuid === B)).toMatchObject({ alive: true });
      expect(normalView(view)).toEqual(normalView(whole(views)));
    } finally {
      await state.close();
    }
  });

  it('a container change wakes it with the new configuration tag (a plugin takes leases conditional on it), nothing else', async () => {
    const state = await open(Date.now);
    try {
      await state.report(report(A));
      const views = new Views(state, true);
      const since = state.generation;
      const woken = state.waitForChange(since, 5_000, undefined, WHOLE_CLUSTER);
      await state.mutate((c) =>
        createContainer(c, {
          name: 'web',
          node_uuid: A,
          image: 'nginx',
          ports: [],
          environment: {},
          links: [],
          volumes: [],
          restart_policy: { name: 'never' },
        }),
      );
      await woken;
      const d = delta(views.deltaFor(WHOLE_CLUSTER, since));
      expect(d).toMatchObject({ datasets: [], leases: [], nodes: [], configuration_tag: state.configurationTag });
      expect(d.generation).toBe(state.generation);
    } finally {
      await state.close();
    }
  });

  it('a lease taken, changed and released: each delta carries it or its removal, the dataset with it', async () => {
    // A still clock: a lease's lifetime is as of the answer that carried it.
    const t = 1_700_000_000_000;
    const state = await open(() => t);
    try {
      await state.report(report(A));
      const views = new Views(state, true);
      const ds = (await state.mutate((c) => createDataset(c, { primary: A }))).result;
      let view = whole(views);
      const step = (): ClusterDelta => {
        const d = delta(views.deltaFor(WHOLE_CLUSTER, view.generation));
        view = applyClusterDelta(view, d) as ClusterSnapshot;
        expect(normalView(view)).toEqual(normalView(whole(views)));
        return d;
      };
      await state.mutate((c, now) => acquireLease(c, { dataset_id: ds.dataset_id, node_uuid: A, expires: 60 }, now));
      expect(step().leases.map((l) => l.dataset_id)).toEqual([ds.dataset_id]);
      await state.mutate((c, now) => acquireLease(c, { dataset_id: ds.dataset_id, node_uuid: A, expires: null }, now));
      expect(step().leases).toMatchObject([{ dataset_id: ds.dataset_id, expires: null }]);
      await state.mutate((c, now) => releaseLease(c, ds.dataset_id, now));
      expect(step().removed_leases).toEqual([ds.dataset_id]);
      // Only what changed: one dataset, not the view.
      await state.mutate((c) => createDataset(c, { primary: A }));
      expect(step().datasets).toHaveLength(1);
    } finally {
      await state.close();
    }
  });
});
