import type { ClusterSnapshot, NodeState } from '@flocker/api';
import { mayPutBack } from './mountRefusal';
import { nodeState } from './testing/nodeState';

// Reviewer RV (session 16): a Mount that timed out on a block-storage takeover from a dead node must not put the
// primary back on that dead node. The data of a block volume is reachable from this node (the agent detaches it from
// the dead node and attaches it here); putting it back undoes the failover and leaves the volume on a node that
// cannot mount it. The put-back is meant for local storage, where the data is only on the old node.
const ME = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const DEAD = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
const ID = 'dddddddd-dddd-4ddd-8ddd-dddddddddddd';

/** A block-storage (loopback) node. */
const node = (uuid: string, host: string, over: Partial<NodeState> = {}): NodeState =>
  nodeState(uuid, host, { backend: 'loopback', ...over });

const holding = { dataset_id: ID, blockdevice_id: ID, status: 'mounted' as const, path: `/m/${ID}`, size: 0 };

function snapshot(nodes: NodeState[]): ClusterSnapshot {
  return {
    generation: 'g1',
    configuration_tag: 'v7',
    datasets: [{ dataset_id: ID, primary: ME, metadata: { name: 'vol1' }, deleted: false, maximum_size: null }],
    leases: [],
    nodes,
  };
}

describe('mayPutBack on block storage (RV)', () => {
  it('does not put a block volume back on a dead node (a takeover that outlasted the Mount timeout)', () => {
    const s = snapshot([node(ME, 'a'), node(DEAD, 'b', { alive: false, manifestations: [holding] })]);
    expect(mayPutBack(s, ME, ID, DEAD)).toBe(false);
  });
});
