/**
 * grow_pending (session 22, dc50004) in the agent channel's views: new in this release like the lease hand-over's
 * members, so it goes by the same rule (releases.ts, Views.newMembersHidden): a node whose agent reports an older
 * release (or none) is served node states without it, which parse with the previous release's strict schemas while a
 * grow is pending; a current node and an API user see it; /v1/state/datasets (the API) carries it for everyone.
 */
import {
  ClusterDelta,
  ClusterSnapshot,
  DatasetState,
  type Identity,
  ManifestationState,
  NodeState,
} from '@flocker/api';
import { answerFor } from './agentWatch';
import { createDataset } from './configuration';
import type { ControlState } from './ControlState';
import { WHOLE_CLUSTER } from './nodeViews';
import { A, B, C, letterReport as report } from './testing/fixtures';
import {
  gatedState,
  getRoute,
  PREVIOUS_RELEASE as PREVIOUS,
  PreviousDelta,
  PreviousSnapshot,
  THIS_RELEASE as THIS,
} from './testing/previousRelease';
import { API_VIEWER, type Views } from './Views';

const D0 = '00000000-1111-4111-8111-111111111111';
const PENDING = { reason: 'online_resize_refused' as const };
const mountedOnA: ManifestationState = {
  dataset_id: D0,
  blockdevice_id: 'b0',
  size: 67108864,
  status: 'mounted',
  path: '/flocker/d0',
};
const heldByB: ManifestationState = { dataset_id: D0, blockdevice_id: 'b0', size: 67108864, status: 'attached' };

let state: ControlState;
let views: Views;
const t = 1_700_000_000_000;

beforeEach(async () => {
  ({ state, views } = await gatedState(() => t));
  // D0's primary is A (current), B (previous release) holds it too, so A's state is in B's view; C reports none.
  await state.report(report(A, { version: THIS }));
  await state.mutate((c) => createDataset(c, { primary: A, dataset_id: D0, metadata: { name: 'v0' } }));
  await state.report(report(A, { version: THIS, manifestations: [mountedOnA] }));
  await state.report(report(B, { version: PREVIOUS, manifestations: [heldByB] }));
  await state.report(report(C));
});
afterEach(() => state.close());

/** A reports D0's grow as pending (pending = false: done). */
async function growPending(pending = true): Promise<void> {
  await state.report(
    report(A, { version: THIS, manifestations: [pending ? { ...mountedOnA, grow_pending: PENDING } : mountedOnA] }),
  );
}

/** A's D0 manifestation in a view (each view here shows A's state). */
function onA(view: { nodes: NodeState[] }): ManifestationState | undefined {
  const a = view.nodes.find((n) => n.uuid === A);
  expect(a).toBeDefined();
  return a?.manifestations.find((m) => m.dataset_id === D0);
}

describe('grow_pending in views, by the viewer’s release', () => {
  it('an old node’s own view (previous release, or none reported) parses strictly as before; a current one carries it', async () => {
    await growPending();
    for (const old of [B, C]) {
      const parsed = PreviousSnapshot.parse(JSON.parse(views.snapshotFor(old)));
      if (old === B) expect(onA(parsed)).toEqual(mountedOnA);
    }
    const current = ClusterSnapshot.parse(JSON.parse(views.snapshotFor(A)));
    expect(onA(current)?.grow_pending).toEqual(PENDING);
    // The previous schema does refuse it (so the checks above mean something).
    expect(PreviousSnapshot.safeParse(current).success).toBe(false);
  });

  it('deltas: an old node’s parse strictly as before; a current node’s carry it', async () => {
    const since = state.generation;
    await growPending();
    const old = PreviousDelta.parse(JSON.parse(views.deltaFor(B, since) ?? 'null'));
    expect(onA(old)).toEqual(mountedOnA);
    const current = ClusterDelta.parse(JSON.parse(views.deltaFor(A, since) ?? 'null'));
    expect(onA(current)?.grow_pending).toEqual(PENDING);
  });

  it('the whole cluster and the watch’s lines: old askers’ parse as before, current ones’ carry it (either built first)', async () => {
    const since = state.generation;
    await growPending();
    // Current first, then old, then current again: no cached body of one variant is handed to the other.
    const currentFirst = ClusterSnapshot.parse(JSON.parse(views.snapshot(false).toString()));
    expect(onA(currentFirst)?.grow_pending).toEqual(PENDING);
    for (const viewer of [B, C, undefined]) {
      expect(views.newMembersHidden(viewer)).toBe(true);
      const whole = PreviousSnapshot.parse(JSON.parse(views.snapshot(views.newMembersHidden(viewer)).toString()));
      expect(onA(whole)).toEqual(mountedOnA);
      PreviousSnapshot.parse(JSON.parse(views.snapshotFor(WHOLE_CLUSTER, viewer)));
      PreviousDelta.parse(JSON.parse(views.deltaFor(WHOLE_CLUSTER, since, viewer) ?? 'null'));
      PreviousSnapshot.parse(JSON.parse(answerFor(state, views, WHOLE_CLUSTER, undefined, viewer).line.toString()));
      PreviousDelta.parse(JSON.parse(answerFor(state, views, WHOLE_CLUSTER, since, viewer).line.toString()));
    }
    for (const viewer of [A, API_VIEWER]) {
      expect(views.newMembersHidden(viewer)).toBe(false);
      const whole = ClusterSnapshot.parse(
        JSON.parse(answerFor(state, views, WHOLE_CLUSTER, undefined, viewer).line.toString()),
      );
      expect(onA(whole)?.grow_pending).toEqual(PENDING);
      const delta = ClusterDelta.parse(
        JSON.parse(answerFor(state, views, WHOLE_CLUSTER, since, viewer).line.toString()),
      );
      expect(onA(delta)?.grow_pending).toEqual(PENDING);
    }
  });

  it('the legacy whole view is built apart only while a grow is pending (or a lease carries members), once', async () => {
    expect(views.snapshot(true)).toBe(views.snapshot());
    await growPending();
    // Old first this time.
    const legacy = views.snapshot(true);
    expect(legacy).not.toBe(views.snapshot());
    expect(views.snapshot(true)).toBe(legacy);
    expect(onA(PreviousSnapshot.parse(JSON.parse(legacy.toString())))).toEqual(mountedOnA);
    expect(onA(ClusterSnapshot.parse(JSON.parse(views.snapshot().toString())))?.grow_pending).toEqual(PENDING);
    await growPending(false);
    expect(views.snapshot(true)).toBe(views.snapshot());
  });

  it('an upgrade switches it: the node’s next answer carries it', async () => {
    await growPending();
    await state.report(report(B, { version: THIS, manifestations: [heldByB] }));
    expect(onA(ClusterSnapshot.parse(JSON.parse(views.snapshotFor(B))))?.grow_pending).toEqual(PENDING);
  });
});

describe('over the routes', () => {
  const handle = (path: string, query: Record<string, string>, identity?: Identity) =>
    getRoute(state, views, path, query, identity);

  it('GET /v1/agent/cluster: an old node’s certificate or view reads as before; a current node’s and an API user’s carry it', async () => {
    await growPending();
    PreviousSnapshot.parse(await handle('/v1/agent/cluster', {}, { kind: 'node', uuid: B }));
    PreviousSnapshot.parse(await handle('/v1/agent/cluster', { node: B }));
    PreviousSnapshot.parse(await handle('/v1/agent/cluster', {})); // plain HTTP: B is alive and behind
    for (const identity of [
      { kind: 'node' as const, uuid: A },
      { kind: 'user' as const, name: 'admin' },
    ])
      expect(onA(ClusterSnapshot.parse(await handle('/v1/agent/cluster', {}, identity)))?.grow_pending).toEqual(
        PENDING,
      );
  });

  it('GET /v1/state/datasets (the API) carries it whoever asks', async () => {
    await growPending();
    for (const identity of [undefined, { kind: 'node' as const, uuid: B }]) {
      const list = DatasetState.array().parse(await handle('/v1/state/datasets', {}, identity));
      expect(list.find((d) => d.dataset_id === D0 && d.primary === A)?.grow_pending).toEqual(PENDING);
    }
  });
});
