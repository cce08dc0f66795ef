/**
 * The lease hand-over's members in the agent channel's views (session 21, releases.ts): a node whose agent reports an
 * older release than the members' (or none) is served views without them, which parse with the previous release's
 * strict schemas while a lease carries both; a current node sees them; an upgrade switches it; the whole cluster's view
 * goes by its asker (a node's certificate; an API user; unknown: any alive node behind).
 */
import { ClusterDelta, ClusterSnapshot, type Identity, type Lease } from '@flocker/api';
import { answerFor } from './agentWatch';
import { acquireLease, createDataset } from './configuration';
import type { ControlState } from './ControlState';
import { requestRelease } from './leaseHandover';
import { WHOLE_CLUSTER } from './nodeViews';
import { olderRelease, parsesNewMembers } from './releases';
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
const D1 = '00000001-1111-4111-8111-111111111111';

let state: ControlState;
let views: Views;
let t = 1_700_000_000_000;

beforeEach(async () => {
  ({ state, views } = await gatedState(() => t));
  await state.report(report(A, { version: THIS }));
  await state.report(report(B, { version: PREVIOUS }));
  await state.report(report(C));
  // D0 on A; D1 on B: both leased by A's plugin with release_on_request, in both nodes' views (B holds D0).
  await state.mutate((c) => createDataset(c, { primary: A, dataset_id: D0, metadata: { name: 'v0' } }));
  await state.mutate((c) => createDataset(c, { primary: B, dataset_id: D1, metadata: { name: 'v1' } }));
  await state.report(
    report(B, {
      version: PREVIOUS,
      manifestations: [{ dataset_id: D0, blockdevice_id: 'b0', size: 67108864, status: 'attached' }],
    }),
  );
  for (const id of [D0, D1])
    await state.mutate((c, at) =>
      acquireLease(c, { dataset_id: id, node_uuid: A, expires: null, holder: 'docker', release_on_request: true }, at),
    );
});
afterEach(() => state.close());

async function askFor(id: string): Promise<void> {
  await state.mutate((c, at) => requestRelease(c, id, A, C, new Date(at).toISOString(), at));
}

const leasesOf = (view: { leases: Lease[] }): Lease[] => view.leases;
const withMembers = (ls: Lease[]): Lease[] => ls.filter((l) => l.release_on_request === true);

describe('lease hand-over members in views, by the viewer’s release', () => {
  it('an old node’s own view (previous release, or none reported) parses strictly as before; a current one carries them', async () => {
    await askFor(D1);
    for (const old of [B, C]) {
      const json = JSON.parse(views.snapshotFor(old)) as unknown;
      const parsed = PreviousSnapshot.parse(json);
      if (old === B) expect(parsed.leases.map((l) => l.dataset_id).sort()).toEqual([D0, D1]);
    }
    const current = ClusterSnapshot.parse(JSON.parse(views.snapshotFor(A)));
    expect(withMembers(leasesOf(current)).map((l) => l.dataset_id)).toEqual([D0, D1]);
    expect(current.leases.find((l) => l.dataset_id === D1)?.release_requested?.by).toBe(C);
    // The previous schema does refuse them (so the checks above mean something).
    expect(PreviousSnapshot.safeParse(current).success).toBe(false);
  });

  it('deltas: an old node’s parse strictly as before; a current node’s carry the request', async () => {
    const since = state.generation;
    await askFor(D1);
    const old = PreviousDelta.parse(JSON.parse(views.deltaFor(B, since) ?? 'null'));
    expect(old.leases.map((l) => l.dataset_id)).toEqual([D1]);
    const current = ClusterDelta.parse(JSON.parse(views.deltaFor(A, since) ?? 'null'));
    expect(current.leases[0]?.release_requested?.by).toBe(C);
  });

  it('the whole cluster (the plugins follow it): by the asker’s node; API users see them; unknown askers while any alive node is behind do not', async () => {
    const since = state.generation;
    await askFor(D0);
    for (const viewer of [B, C, undefined]) {
      expect(views.newMembersHidden(viewer)).toBe(true);
      PreviousSnapshot.parse(JSON.parse(views.snapshot(views.newMembersHidden(viewer)).toString()));
      PreviousSnapshot.parse(JSON.parse(views.snapshotFor(WHOLE_CLUSTER, viewer)));
      PreviousDelta.parse(JSON.parse(views.deltaFor(WHOLE_CLUSTER, since, viewer) ?? 'null'));
      // The watch's lines (shared per generation and since): whole, then a delta.
      PreviousSnapshot.parse(JSON.parse(answerFor(state, views, WHOLE_CLUSTER, undefined, viewer).line.toString()));
      PreviousDelta.parse(JSON.parse(answerFor(state, views, WHOLE_CLUSTER, since, viewer).line.toString()));
    }
    for (const viewer of [A, API_VIEWER]) {
      expect(views.newMembersHidden(viewer)).toBe(false);
      const whole = ClusterSnapshot.parse(
        JSON.parse(answerFor(state, views, WHOLE_CLUSTER, undefined, viewer).line.toString()),
      );
      expect(withMembers(whole.leases)).toHaveLength(2);
      const delta = ClusterDelta.parse(
        JSON.parse(answerFor(state, views, WHOLE_CLUSTER, since, viewer).line.toString()),
      );
      expect(delta.leases[0]?.release_requested?.by).toBe(C);
    }
  });

  it('an upgrade switches it: the node’s next answer carries them; unknown askers once no alive node is behind', async () => {
    const held = [{ dataset_id: D0, blockdevice_id: 'b0', size: 67108864, status: 'attached' as const }];
    await state.report(report(B, { version: THIS, manifestations: held }));
    expect(withMembers(ClusterSnapshot.parse(JSON.parse(views.snapshotFor(B))).leases)).toHaveLength(2);
    expect(views.newMembersHidden(B)).toBe(false);
    expect(views.newMembersHidden(undefined)).toBe(true); // C reports none
    await state.report(report(C, { version: '1.22.0' }));
    expect(views.newMembersHidden(undefined)).toBe(false);
    expect(withMembers(ClusterSnapshot.parse(JSON.parse(views.snapshot(false).toString())).leases)).toHaveLength(2);
    // A downgrade (or an agent restarted on the older package) switches back.
    await state.report(report(B, { version: PREVIOUS, manifestations: held }));
    expect(PreviousSnapshot.parse(JSON.parse(views.snapshotFor(B))).leases).toHaveLength(2);
  });

  it('no copy while no lease carries them: the old nodes’ whole view is the current body itself', async () => {
    await state.mutate((c, at) =>
      acquireLease(c, { dataset_id: D0, node_uuid: A, expires: null, holder: 'docker', release_on_request: false }, at),
    );
    await state.mutate((c, at) =>
      acquireLease(c, { dataset_id: D1, node_uuid: A, expires: null, holder: 'docker', release_on_request: false }, at),
    );
    expect(views.snapshot(true)).toBe(views.snapshot());
    await askFor(D0); // nothing: D0 no longer promises
    await state.mutate((c, at) =>
      acquireLease(c, { dataset_id: D0, node_uuid: A, expires: null, holder: 'docker', release_on_request: true }, at),
    );
    t += 1000;
    const legacy = views.snapshot(true);
    expect(legacy).not.toBe(views.snapshot());
    expect(views.snapshot(true)).toBe(legacy); // built once per generation and second
  });
});

describe('GET /v1/agent/cluster: the viewer is the certificate’s node for the whole view, `node` for a node’s', () => {
  const ask = (query: Record<string, string>, identity?: Identity) =>
    getRoute(state, views, '/v1/agent/cluster', query, identity);

  it('an old node’s certificate, or its node’s view, reads as before; a current node’s and an API user’s carry them', async () => {
    await askFor(D0);
    PreviousSnapshot.parse(await ask({}, { kind: 'node', uuid: B }));
    PreviousSnapshot.parse(await ask({ node: B }, { kind: 'node', uuid: B }));
    PreviousSnapshot.parse(await ask({ node: B }));
    PreviousSnapshot.parse(await ask({})); // no certificate (plain HTTP): B is alive and behind
    for (const identity of [
      { kind: 'node' as const, uuid: A },
      { kind: 'user' as const, name: 'admin' },
    ])
      expect(withMembers(ClusterSnapshot.parse(await ask({}, identity)).leases)).toHaveLength(2);
    expect(withMembers(ClusterSnapshot.parse(await ask({ node: A })).leases)).toHaveLength(2);
  });
});

describe('releases', () => {
  it('compares release numbers; what is not one counts as older', () => {
    expect(olderRelease('1.20.3', '1.21.0')).toBe(true);
    expect(olderRelease('1.21.0-rc1', '1.21.0')).toBe(true);
    expect(olderRelease('1.21.0~rc1', '1.21.0')).toBe(true);
    expect(olderRelease('1.21.0', '1.21.0-rc1')).toBe(false);
    expect(olderRelease('1.21.0+deb12', '1.21.0')).toBe(false);
    expect(olderRelease('2.0.0', '1.99.99')).toBe(false);
    expect(olderRelease('1.9.0', '1.10.0')).toBe(true);
    expect(olderRelease('unknown', '1.0.0')).toBeUndefined();
    expect(parsesNewMembers(undefined, THIS)).toBe(false);
    expect(parsesNewMembers('unknown', THIS)).toBe(false);
    expect(parsesNewMembers('unknown', 'unknown')).toBe(true);
    expect(parsesNewMembers('0.1.0', '0.1.0')).toBe(true);
    expect(parsesNewMembers(PREVIOUS, THIS)).toBe(false);
    expect(parsesNewMembers('1.22.0', THIS)).toBe(true);
  });
});
