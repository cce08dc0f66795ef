import type { ClusterSnapshot, NodeState } from '@flocker/api';
import type { LocalState } from './LocalState';
import { explanationOf, isEmptyGaps, supplementView, viewGaps } from './viewGaps';
import { nodeState as node } from './testing/fakes';

const ME = '11111111-1111-4111-8111-111111111111';
const A = '22222222-2222-4222-8222-222222222222';
const B = '33333333-3333-4333-8333-333333333333';
const ds = (id: string, primary: string, deleted = false) => ({ dataset_id: id, primary, metadata: {}, deleted });
const snap = (datasets: ClusterSnapshot['datasets'], nodes: NodeState[]): ClusterSnapshot => ({
  generation: 'g',
  configuration_tag: 't',
  datasets,
  leases: [],
  nodes,
});
const vol = (blockdeviceId: string, datasetId: string, attachedTo: string | null) => ({
  blockdeviceId,
  datasetId,
  size: 1,
  attachedTo,
});
const local = (volumes: LocalState['volumes'], unreadable?: LocalState['unreadable']): LocalState => ({
  instanceId: 'i-me',
  volumes,
  ...(unreadable !== undefined ? { unreadable } : {}),
});

describe('viewGaps', () => {
  const view = snap([ds('d1', ME), ds('d2', ME, true)], [node(ME, { instance_id: 'i-me' }), node(A)]);

  it('nothing to explain: own volumes, volumes attached to a node of the view, others attached elsewhere', () => {
    const gaps = viewGaps(view, local([vol('v1', 'd1', 'i-me'), vol('v2', 'd2', 'i-2'), vol('v9', 'd9', 'i-x')]));
    expect(isEmptyGaps(gaps)).toBe(true);
  });

  it("a view dataset's volume attached to an unknown instance, an unattached volume outside the view, an unattributed record", () => {
    const gaps = viewGaps(
      view,
      local(
        [vol('v1', 'd1', 'i-dead'), vol('v9', 'd9', null), vol('v8', 'd8', 'i-x')],
        [{ blockdeviceId: 'bad' }, { blockdeviceId: 'bad2', datasetId: 'd7' }],
      ),
    );
    expect(gaps).toEqual({ instances: ['i-dead'], blockdevices: ['bad'], datasets: ['d9'] });
  });
});

describe('explanationOf + supplementView', () => {
  const whole = snap(
    [ds('d1', ME), ds('d9', B, true), ds('d8', A, true), ds('d7', A), ds('d6', B)],
    [
      node(ME, { instance_id: 'i-me' }),
      node(A),
      node(B, { alive: false, instance_id: 'i-dead' }),
      node('44444444-4444-4444-8444-444444444444', {
        instance_id: 'i-4',
        volumes: [{ blockdevice_id: 'bad', dataset_id: 'd6', size: 1, attached_to: null }],
      }),
    ],
  );

  it("only what explains the gaps: the dead instance's node, the reporter of the record and its dataset, deleted datasets of dead primaries", () => {
    const extra = explanationOf(whole, { instances: ['i-dead'], blockdevices: ['bad'], datasets: ['d9', 'd8', 'd7'] });
    // d8: deleted but its primary A is alive (A destroys it); d7: not deleted (nothing to do).
    expect(extra.datasets.map((d) => d.dataset_id)).toEqual(['d9', 'd6']);
    expect(extra.nodes.map((n) => n.instance_id).sort()).toEqual(['i-4', 'i-dead']);
  });

  it('the view wins: a node or dataset it holds is never replaced, and nothing to add gives the view itself', () => {
    const view = snap([ds('d9', B)], [node(B, { alive: true, instance_id: 'i-dead' })]);
    const extra = explanationOf(whole, { instances: ['i-dead'], blockdevices: [], datasets: ['d9'] });
    expect(supplementView(view, extra)).toBe(view);
    const other = snap([], [node(ME, { instance_id: 'i-me' })]);
    const merged = supplementView(other, extra);
    expect(merged.nodes.map((n) => n.alive)).toEqual([true, false]);
    expect(merged.datasets.map((d) => d.dataset_id)).toEqual(['d9']);
  });
});
