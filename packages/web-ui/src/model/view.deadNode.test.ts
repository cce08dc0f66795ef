/**
 * Review T2 (session 18): the web UI says a volume is "mounted on <host> at <path>" while that host
 * is dead (powered off: nothing is mounted there any more). Reproduced on `./dev cluster up 3`:
 * `./dev cluster poweroff c` with volumes on c; the node list says c is dead, each of its volumes
 * keeps state "mounted" with detail "mounted on 10.77.0.13 at …" (the dead node's last report).
 * The state should say the node is not alive (as it does when the dead node reported no mount).
 */
import type { ClusterSnapshot, DatasetConfiguration, NodeState } from '@flocker/api/schemas';
import { volumeState } from './view';
import { A, actionError, B, D1, dataset, mounted, node, snapshot } from '../testing/fixtures';

const d1 = dataset(D1, 'pgdata', A);
const onA = (datasets: DatasetConfiguration[], over: Partial<NodeState> = {}): ClusterSnapshot =>
  snapshot({ datasets, nodes: [node(A, 'a', over), node(B, 'b')] });

describe('volumeState of a volume whose node is dead', () => {
  it('does not say mounted on the dead node, whatever its last report said', () => {
    const dead = onA([d1], { alive: false, manifestations: [mounted(D1, '/m/1')] });
    const v = volumeState(dead, d1);
    expect(v.state).not.toBe('mounted');
    expect(v.detail).toContain('node a is not alive');
    // What it last said stays readable, as the past: no "mounted on".
    expect(v.detail).toBe('node a is not alive (its last report had it mounted at /m/1)');
  });

  it("says the node is not alive rather than the dead node's last failure (one answer before and after a control restart)", () => {
    const err = actionError(D1);
    const v = volumeState(onA([d1], { alive: false, errors: [err] }), d1);
    expect(v).toMatchObject({ state: 'error', detail: 'node a is not alive' });
    expect(v.errors).toHaveLength(1);
  });
});
