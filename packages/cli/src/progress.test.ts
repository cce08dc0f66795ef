import type { ClusterSnapshot, DatasetState, NodeState } from '@flocker/api';
import { node as fixtureNode } from '@flocker/web-ui/testing';
import { growPendingText, isGone, movePhase, moveWaitPhase, resizePhase } from './progress';

const D = '11111111-1111-4111-8111-111111111111';
const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const B = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';

/** Node A is `host-a` on instance `i-host-a`, node B `host-b` on `i-host-b`. */
const node = (uuid: string, patch: Partial<NodeState> = {}): NodeState =>
  fixtureNode(uuid, uuid === A ? 'host-a' : 'host-b', patch);
function snap(nodes: NodeState[]): ClusterSnapshot {
  return { generation: 'g', configuration_tag: 't', datasets: [], leases: [], nodes };
}
const vol = (attached_to: string | null) => ({ blockdevice_id: 'v', dataset_id: D, size: 1, attached_to });

describe('movePhase', () => {
  it('is mounted when the node reports it mounted', () => {
    const s = snap([
      node(A, {
        manifestations: [{ dataset_id: D, blockdevice_id: 'v', size: 1, status: 'mounted', path: '/flocker/x' }],
      }),
    ]);
    expect(movePhase(s, D, A)).toEqual({ phase: 'mounted', path: '/flocker/x' });
  });
  it('walks the steps of a move', () => {
    expect(movePhase(snap([node(A)]), D, A)).toMatchObject({ step: 'creating' });
    expect(movePhase(snap([node(A, { volumes: [vol(null)] })]), D, A)).toMatchObject({ step: 'attaching' });
    expect(movePhase(snap([node(A), node(B, { volumes: [vol('i-host-b')] })]), D, A)).toMatchObject({
      step: 'detaching from host-b',
    });
    expect(movePhase(snap([node(A), node(B, { alive: false, volumes: [vol('i-host-b')] })]), D, A)).toMatchObject({
      step: 'waiting for dead node host-b to be fenced',
    });
    const attached = node(A, { manifestations: [{ dataset_id: D, blockdevice_id: 'v', size: 1, status: 'attached' }] });
    expect(movePhase(snap([attached]), D, A)).toMatchObject({ step: 'formatting and mounting' });
  });
  it('reports the node error for the dataset, and fatal conditions', () => {
    const err = { dataset_id: D, action: 'mount', code: 'MOUNT_FAILED', message: 'boom', attempts: 3, since: 'x' };
    expect(movePhase(snap([node(A, { errors: [err] })]), D, A)).toMatchObject({
      error: 'mount failed (3 attempts): boom',
    });
    expect(movePhase(snap([]), D, A)).toMatchObject({ fatal: true });
    expect(movePhase(snap([node(A, { alive: false })]), D, A)).toMatchObject({ fatal: true });
  });
  it("shows a local move's phase, bytes sent of total and round while the target waits (issue 24)", () => {
    const MiB = 1024 * 1024;
    const move = (phase: 'copying' | 'waitingForRelease' | 'final' | 'promoting', rounds: number, sent: number) =>
      snap([
        node(A, {
          manifestations: [{ dataset_id: D, blockdevice_id: 'btrfs:/p/x', size: 1, status: 'mounted', path: '/m' }],
          moves: [{ dataset_id: D, to: B, phase, rounds, bytes_sent: sent * MiB, bytes_total: 64 * MiB }],
        }),
        node(B),
      ]);
    expect(movePhase(move('copying', 0, 16), D, B)).toEqual({
      phase: 'waiting',
      step: 'copying from host-a to host-b: 16 MiB of 64 MiB sent (25%), 0 rounds done',
      stage: 'local move: copying',
    });
    expect(movePhase(move('copying', 1, 16), D, B)).toEqual({
      phase: 'waiting',
      step: 'copying what changed on host-a to host-b: all 64 MiB copied, 16 MiB sent, 1 round done',
      stage: 'local move: copying again',
    });
    expect(movePhase(move('waitingForRelease', 3, 64), D, B)).toMatchObject({
      step:
        'caught up with host-a; waiting for its users to release the volume (stop what uses it on host-a, e.g. its ' +
        'containers, to finish the move): all 64 MiB copied, 64 MiB sent, 3 rounds done',
    });
    expect(movePhase(move('final', 4, 65), D, B)).toMatchObject({ step: expect.stringMatching(/^sending the last/) });
    expect(movePhase(move('promoting', 4, 65), D, B)).toMatchObject({
      step: expect.stringMatching(/^host-b is taking/),
    });
    // Before the source's first report of it: the copy is still on the source (nothing to attach).
    const before = snap([
      node(A, {
        backend: 'local-btrfs',
        manifestations: [{ dataset_id: D, blockdevice_id: 'btrfs:/p/x', size: 1, status: 'mounted', path: '/m' }],
      }),
      node(B, { backend: 'local-btrfs' }),
    ]);
    expect(movePhase(before, D, B)).toEqual({ phase: 'waiting', step: 'waiting for host-a to start the move' });
    // A move to another node is not this wait's.
    expect(movePhase(move('copying', 1, 16), D, A)).toEqual({ phase: 'mounted', path: '/m' });
    const err = { dataset_id: D, action: 'move', code: 'TRANSFER_FAILED', message: 'reset', attempts: 2, since: 'x' };
    const failing = move('copying', 2, 20);
    failing.nodes[1] = node(B, { errors: [err] });
    expect(movePhase(failing, D, B)).toMatchObject({ step: expect.stringMatching(/^copying/), error: /reset/ });
  });
  it('isGone once nothing holds the dataset', () => {
    expect(isGone(snap([node(A, { volumes: [vol(null)] })]), D)).toBe(false);
    expect(isGone(snap([node(A)]), D)).toBe(true);
  });
});

describe('resizePhase', () => {
  const dataset = (patch: Partial<ClusterSnapshot['datasets'][number]> = {}) => ({
    dataset_id: D,
    primary: A,
    maximum_size: 256,
    metadata: {},
    deleted: false,
    ...patch,
  });
  const at = (size: number) => ({ dataset_id: D, blockdevice_id: 'v', size, status: 'mounted' as const, path: '/p' });
  const withDataset = (s: ClusterSnapshot, patch: Partial<ClusterSnapshot['datasets'][number]> = {}) => ({
    ...s,
    datasets: [dataset(patch)],
  });

  it('is done once the primary reports the volume at least the new size', () => {
    expect(resizePhase(withDataset(snap([node(A, { manifestations: [at(256)] })])), D, 256)).toEqual({
      done: { host: 'host-a', size: 256 },
    });
  });
  it('says which step it waits for, with the node error for the dataset', () => {
    expect(resizePhase(withDataset(snap([node(A, { manifestations: [at(128)] })])), D, 256)).toEqual({
      step: 'growing the volume on host-a',
    });
    expect(resizePhase(withDataset(snap([node(A)])), D, 256)).toEqual({ step: 'waiting for host-a to attach it' });
    const err = {
      dataset_id: D,
      action: 'resize',
      code: 'BACKEND_ERROR',
      message: 'no space',
      attempts: 2,
      since: 'x',
    };
    expect(resizePhase(withDataset(snap([node(A, { manifestations: [at(128)], errors: [err] })])), D, 256)).toEqual({
      step: 'growing the volume on host-a',
      error: 'resize failed: no space (BACKEND_ERROR)',
    });
  });
  it('ends with the grow pending when the node reports it waits until the volume is unused (TN F3)', () => {
    const refused = { ...at(256), grow_pending: { reason: 'online_resize_refused' as const } };
    expect(resizePhase(withDataset(snap([node(A, { manifestations: [refused] })])), D, 256)).toEqual({
      done: { host: 'host-a', size: 256, pending: { reason: 'online_resize_refused' } },
    });
    // The backend grows it only detached: the device is still the old size, and stays so while it is used.
    const detach = { ...at(128), grow_pending: { reason: 'detach_required' as const } };
    expect(resizePhase(withDataset(snap([node(A, { manifestations: [detach] })])), D, 256)).toEqual({
      done: { host: 'host-a', size: 128, pending: { reason: 'detach_required' } },
    });
  });
  it('growPendingText names who uses the volume (its leases)', () => {
    const s = withDataset(snap([node(A), node(B)]));
    const leased = {
      ...s,
      leases: [{ dataset_id: D, node_uuid: A, expires: null, holders: ['docker'] }],
    };
    expect(growPendingText(leased, D)).toBe('pending: grows when the volume is unmounted (in use by docker on host-a)');
    expect(growPendingText({ ...s, leases: [{ dataset_id: D, node_uuid: B, expires: null }] }, D)).toBe(
      'pending: grows when the volume is unmounted (in use on host-b)',
    );
    expect(growPendingText(s, D)).toBe('pending: grows when the volume is unmounted (no lease on it now: shortly)');
  });
  it('is fatal when the volume is deleted or its node is dead', () => {
    expect(resizePhase(withDataset(snap([node(A)]), { deleted: true }), D, 256)).toMatchObject({ fatal: true });
    expect(resizePhase(withDataset(snap([node(A, { alive: false })])), D, 256)).toMatchObject({
      fatal: true,
      error: 'node host-a is not alive',
    });
  });
});

describe('moveWaitPhase: a move away and straight back (session 9, stale mounted)', () => {
  const mountedAt = (last_seen: string) =>
    node(A, {
      last_seen,
      manifestations: [{ dataset_id: D, blockdevice_id: 'v', size: 1, status: 'mounted', path: '/flocker/x' }],
    });
  const withPrimary = (s: ClusterSnapshot, primary: string): ClusterSnapshot => ({
    ...s,
    datasets: [{ dataset_id: D, primary, deleted: false, metadata: {} }],
  });
  const T0 = '2026-12-05T04:00:00.000Z';
  const T1 = '2026-12-05T04:00:00.005Z';

  it('does not take the target’s "mounted" from the report it sent before the move (the old code did)', () => {
    // Before the move back: primary B (mounted there), A's report from before it unmounted still says mounted.
    const before = withPrimary(snap([mountedAt(T0), node(B)]), B);
    const after = withPrimary(snap([mountedAt(T0), node(B)]), A);
    expect(movePhase(after, D, A)).toEqual({ phase: 'mounted', path: '/flocker/x' });
    expect(moveWaitPhase(before, after, D, A)).toMatchObject({
      phase: 'waiting',
      step: 'waiting for host-a to report since the move (it unmounts for the move away)',
    });
    // A's next report (mounted again, even if the same as before) ends the wait.
    expect(moveWaitPhase(before, withPrimary(snap([mountedAt(T1), node(B)]), A), D, A)).toEqual({
      phase: 'mounted',
      path: '/flocker/x',
    });
  });

  it('is movePhase in every other case: not mounted before, a move to where it is, a node unknown before', () => {
    const after = withPrimary(snap([mountedAt(T0), node(B)]), A);
    expect(moveWaitPhase(withPrimary(snap([node(A, { last_seen: T0 }), node(B)]), B), after, D, A)).toEqual({
      phase: 'mounted',
      path: '/flocker/x',
    });
    expect(moveWaitPhase(withPrimary(snap([mountedAt(T0)]), A), after, D, A)).toEqual({
      phase: 'mounted',
      path: '/flocker/x',
    });
    expect(moveWaitPhase(withPrimary(snap([node(B)]), B), after, D, A)).toEqual({
      phase: 'mounted',
      path: '/flocker/x',
    });
    const waiting = withPrimary(snap([node(A, { last_seen: T1 }), node(B)]), A);
    expect(moveWaitPhase(withPrimary(snap([mountedAt(T0)]), B), waiting, D, A)).toEqual(movePhase(waiting, D, A));
  });
});

describe('moveWaitPhase: a report built before the move back, received after it (session 10, configuration_version)', () => {
  const mountedAt = (last_seen: string) =>
    node(A, {
      last_seen,
      manifestations: [{ dataset_id: D, blockdevice_id: 'v', size: 1, status: 'mounted', path: '/flocker/x' }],
    });
  const withPrimary = (s: ClusterSnapshot, primary: string): ClusterSnapshot => ({
    ...s,
    datasets: [{ dataset_id: D, primary, deleted: false, metadata: {} }],
  });
  const T0 = '2026-12-05T04:00:00.000Z';
  const T1 = '2026-12-05T04:00:00.005Z';
  const at = (primary: string, path: string): DatasetState[] => [{ dataset_id: D, primary, maximum_size: 1, path }];
  const before = withPrimary(snap([mountedAt(T0), node(B)]), B);
  // A's report built at the move away (it was unmounting), received 5 ms after the move back: a later last_seen.
  const after = withPrimary(snap([mountedAt(T1), node(B)]), A);

  it("the session-9 wait (no state list) takes it; with the service's state list (it hides it) the wait goes on", () => {
    expect(moveWaitPhase(before, after, D, A)).toEqual({ phase: 'mounted', path: '/flocker/x' });
    // The control service's verdict: that report's configuration_version is older than the move back, so
    // /v1/state/datasets shows the dataset where it really is mounted (B), not at A.
    expect(moveWaitPhase(before, after, D, A, at(B, '/flocker-b/x'))).toEqual({
      phase: 'waiting',
      step: 'waiting for host-a to report having acted on the move (it may be unmounting)',
    });
    expect(moveWaitPhase(before, after, D, A, [])).toMatchObject({ phase: 'waiting' });
    // A's report built after it acted on the move back: shown at A, the wait ends.
    expect(moveWaitPhase(before, after, D, A, at(A, '/flocker/x'))).toEqual({ phase: 'mounted', path: '/flocker/x' });
  });

  it('the state list never ends a wait movePhase or the session-9 rule would not end', () => {
    const waiting = withPrimary(snap([node(A, { last_seen: T1 }), node(B)]), A);
    expect(moveWaitPhase(before, waiting, D, A, at(A, '/flocker/x'))).toEqual(movePhase(waiting, D, A));
    const sameReport = withPrimary(snap([mountedAt(T0), node(B)]), A);
    expect(moveWaitPhase(before, sameReport, D, A, at(A, '/flocker/x'))).toMatchObject({ phase: 'waiting' });
    // A move where nothing was mounted before: the list decides too (a report in flight shows no more than it).
    const fresh = withPrimary(snap([node(A, { last_seen: T0 }), node(B)]), B);
    expect(moveWaitPhase(fresh, after, D, A, at(B, '/flocker-b/x'))).toMatchObject({ phase: 'waiting' });
    expect(moveWaitPhase(fresh, after, D, A, at(A, '/flocker/x'))).toEqual({ phase: 'mounted', path: '/flocker/x' });
  });
});
