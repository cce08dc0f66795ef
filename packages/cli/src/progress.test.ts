import type { ClusterSnapshot, NodeState } from '@flocker/api';
import { node as fixtureNode } from '@flocker/web-ui/testing';
import { isGone, movePhase, resizePhase } from './progress';

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
    expect(movePhase(move('copying', 1, 16), D, B)).toEqual({
      phase: 'waiting',
      step: 'copying from host-a to host-b: 16 MiB of 64 MiB sent (25%), 1 round done',
    });
    expect(movePhase(move('waitingForRelease', 3, 64), D, B)).toMatchObject({
      step: 'caught up with host-a; waiting for its users to release the volume: 64 MiB of 64 MiB sent (100%), 3 rounds done',
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
  it('is fatal when the volume is deleted or its node is dead', () => {
    expect(resizePhase(withDataset(snap([node(A)]), { deleted: true }), D, 256)).toMatchObject({ fatal: true });
    expect(resizePhase(withDataset(snap([node(A, { alive: false })])), D, 256)).toMatchObject({
      fatal: true,
      error: 'node host-a is not alive',
    });
  });
});
