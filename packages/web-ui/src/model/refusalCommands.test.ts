/**
 * A local agent's refusal (issue 24) names its way out in the API's words ("set metadata
 * clusterhq:flocker:accept-replica-loss=true"): a user of the page or of `flocker` is also told the command that does
 * it (`flocker volumes move <volume> <primary> --accept-replica-loss`, `--accept-data-loss`). The messages below are
 * the dataset agent's (dataset-agent localChanges.ts), as it reports them.
 */
import type { ClusterSnapshot } from '@flocker/api/schemas';
import { refusalWithCommands } from './local';
import { clusterView } from './view';
import { A, B, D1, dataset, node, snapshot } from '../testing/fixtures';

const RL = 'clusterhq:flocker:accept-replica-loss';
const DL = 'clusterhq:flocker:accept-data-loss';
const DEAD = `the data of dataset ${D1} is on node ${A} (a), which is dead: local storage cannot be moved off a dead node; bring it back, or move the dataset back to it; or accept losing the writes after this node's replica (snapshot move-000002): set metadata ${RL}=true`;
const MARKED = `the data of dataset ${D1} may be on node ${A} (a), which has not reported it to the control service (restarted? dead?); bring ${A} back, or set metadata ${DL}=true to start it empty; or start it from this node's replica (snapshot move-000002), losing the writes after it and any the node made since: set metadata ${RL}=true and ${DL}=true`;
const UNMOUNTED = `the data of dataset ${D1} may be on node ${A} (a), which has not reported it to the control service (restarted? dead?); this node's copy (not mounted) is not known to be the one a move here made, and ${A} may hold a newer one made from it: not mounting it. Bring ${A} back (this node mounts its copy once ${A} reports holding none), or, if ${A} is gone for good, set metadata ${DL}=true to mount this node's copy, losing what ${A} may hold`;

/** pg's primary is b (local), which refuses with `message`. */
const refusedOnB = (message: string): ClusterSnapshot =>
  snapshot({
    datasets: [dataset(D1, 'pg', B)],
    nodes: [
      node(A, 'a', { backend: 'local-btrfs', alive: false }),
      node(B, 'b', {
        backend: 'local-btrfs',
        errors: [{ dataset_id: D1, action: 'refuse', code: 'SOURCE_UNREACHABLE', message, attempts: 1, since: 's' }],
      }),
    ],
  });

describe('refusalWithCommands', () => {
  it('the dead source with a replica: the move with --accept-replica-loss', () => {
    expect(refusalWithCommands(refusedOnB(DEAD), D1, DEAD)).toBe(
      `${DEAD} (flocker volumes move pg b --accept-replica-loss)`,
    );
  });

  it('the data-node marker: --accept-data-loss alone, and both opt-ins for the replica', () => {
    expect(refusalWithCommands(refusedOnB(MARKED), D1, MARKED)).toBe(
      MARKED.replace(
        `${DL}=true to start it empty`,
        `${DL}=true (flocker volumes move pg b --accept-data-loss) to start it empty`,
      ) + ' (flocker volumes move pg b --accept-replica-loss --accept-data-loss)',
    );
    expect(refusalWithCommands(refusedOnB(UNMOUNTED), D1, UNMOUNTED)).toContain(
      `${DL}=true (flocker volumes move pg b --accept-data-loss) to mount this node's copy`,
    );
  });

  it('other messages, and a dataset not known: as they are', () => {
    expect(refusalWithCommands(refusedOnB('two live copies'), D1, 'two live copies')).toBe('two live copies');
    expect(refusalWithCommands(refusedOnB(DEAD), '00000000-0000-4000-8000-000000000000', DEAD)).toBe(DEAD);
  });

  it('the page shows the command in the volume’s state', () => {
    expect(clusterView(refusedOnB(DEAD)).volumes[0]?.detail).toContain(
      '(flocker volumes move pg b --accept-replica-loss)',
    );
  });
});

describe('the standby replica while the new primary refuses a move off the dead node', () => {
  it("is shown from the dead node's last report: its age is what --accept-replica-loss loses", () => {
    const s = refusedOnB(DEAD);
    s.nodes[0] = node(A, 'a', {
      backend: 'local-btrfs',
      alive: false,
      manifestations: [{ dataset_id: D1, blockdevice_id: 'x', size: 1, status: 'mounted', path: '/a' }],
      replicas: [{ dataset_id: D1, node_uuid: B, snapshot: 'move-000002', taken_at: '2026-12-05T18:59:30.000Z' }],
    });
    expect(clusterView(s).volumes[0]?.replica).toEqual({
      node_uuid: B,
      host: 'b',
      taken_at: '2026-12-05T18:59:30.000Z',
    });
    // Without the refusal (the move done, or not asked): a former primary's report says nothing, as before.
    s.nodes[1] = node(B, 'b', { backend: 'local-btrfs' });
    expect(clusterView(s).volumes[0]?.replica).toBeNull();
  });
});
