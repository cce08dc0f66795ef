/**
 * `flocker status` with a node the control service holds alive with its state unknown (T1 S0, session 19): such a
 * node is in no snapshot, only in GET /v1/state/nodes; status names it and is not converged.
 */
import type { ClusterSnapshot, FlockerClient, NodeStateSummary } from '@flocker/api';
import { A, D1, dataset, node, snapshot } from '@flocker/web-ui/testing';
import { runCli } from './testing/runCli';

const C = '0c0c0c0c-0000-4000-8000-00000000000c';

const fakeClient = (s: ClusterSnapshot, alive: NodeStateSummary[]) =>
  ({
    version: async () => ({ flocker: 'x' }),
    listDatasets: async () => s.datasets,
    waitForCluster: async () => s,
    listEvents: async () => [],
    listNodes: async () => alive,
  }) as unknown as FlockerClient;

describe('flocker status: nodes alive with their state unknown', () => {
  const s = snapshot({ datasets: [dataset(D1, 'r1', A)], nodes: [node(A, 'a')] });

  it('names them under the problems and exits 1', async () => {
    const r = await runCli(
      () =>
        fakeClient(s, [
          { uuid: A, host: 'a' },
          { uuid: C, host: 'c' },
        ]),
      ['status'],
    );
    expect(r.out).toContain('node c: alive, its state unknown');
    expect(r.out).not.toContain('node a: alive, its state unknown');
    expect(r.code).toBe(1);
  });

  it('says nothing of them when every alive node is in the snapshot', async () => {
    const r = await runCli(() => fakeClient(s, [{ uuid: A, host: 'a' }]), ['status']);
    expect(r.out).not.toContain('state unknown');
  });
});
