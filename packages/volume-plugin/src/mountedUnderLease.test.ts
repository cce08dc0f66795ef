/**
 * A Mount answers only from a snapshot that shows this node's lease and this node as the
 * primary: a snapshot from before a move (the long-poll lagging) shows the volume mounted here
 * while the agent has already unmounted it, and a container would write into the bare directory.
 */
import { ClusterSnapshot } from '@flocker/api';
import { mountedForConditionalLease, mountedUnderLease } from './FlockerVolumeBackend';

const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const B = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
const D = 'dddddddd-dddd-4ddd-8ddd-dddddddddddd';

function snapshot(primary: string, leasedBy: string | undefined, deleted = false): ClusterSnapshot {
  return ClusterSnapshot.parse({
    generation: '1',
    configuration_tag: 't',
    datasets: [{ dataset_id: D, primary, metadata: { name: 'v' }, deleted }],
    leases: leasedBy === undefined ? [] : [{ dataset_id: D, node_uuid: leasedBy, expires: null }],
    nodes: [
      {
        uuid: A,
        era: 'e',
        host: 'a',
        instance_id: 'i-a',
        backend: 'loopback',
        alive: true,
        last_seen: '2026-12-04T00:00:00.000Z',
        manifestations: [
          { dataset_id: D, blockdevice_id: 'b', size: 1 << 26, status: 'mounted', path: `/flocker/${D}` },
        ],
        errors: [],
      },
    ],
  });
}

describe('mountedUnderLease', () => {
  it('answers the path only with this node as primary and lease holder', () => {
    expect(mountedUnderLease(snapshot(A, A), A, D)).toBe(`/flocker/${D}`);
  });

  it('not from a snapshot without this node’s lease (it may predate a move away)', () => {
    expect(mountedUnderLease(snapshot(A, undefined), A, D)).toBeUndefined();
    expect(mountedUnderLease(snapshot(A, B), A, D)).toBeUndefined();
  });

  it('not when the dataset’s primary is another node, though this node still reports it mounted', () => {
    expect(mountedUnderLease(snapshot(B, A), A, D)).toBeUndefined();
  });
});

describe('mountedForConditionalLease (the lease asked for on exactly this snapshot’s configuration)', () => {
  it('answers the path when this node is primary and has it mounted, with no lease or its own', () => {
    expect(mountedForConditionalLease(snapshot(A, undefined), A, D)).toBe(`/flocker/${D}`);
    expect(mountedForConditionalLease(snapshot(A, A), A, D)).toBe(`/flocker/${D}`);
  });

  it('not when another node holds the lease, another node is primary, or the dataset is deleted', () => {
    expect(mountedForConditionalLease(snapshot(A, B), A, D)).toBeUndefined();
    expect(mountedForConditionalLease(snapshot(B, undefined), A, D)).toBeUndefined();
    expect(mountedForConditionalLease(snapshot(A, undefined, true), A, D)).toBeUndefined();
  });

  it('not when this node does not report it mounted', () => {
    const s = snapshot(A, undefined);
    const unmounted = { ...s, nodes: s.nodes.map((n) => ({ ...n, manifestations: [] })) };
    expect(mountedForConditionalLease(unmounted, A, D)).toBeUndefined();
    expect(mountedForConditionalLease(s, B, D)).toBeUndefined();
  });
});
