/**
 * s26 USER-W: `flocker volumes destroy v --no-wait` printed "Destroyed v" while the volume was still listed (its node
 * had not yet unmounted and destroyed it); `--no-wait` only records the deletion, as `resize --no-wait` says
 * ("Resizing v to …"). Snapshots alike. With the wait (the default) the words stay "Destroyed".
 */
import type { ClusterSnapshot, DatasetConfiguration, FlockerClient, SnapshotConfiguration } from '@flocker/api';
import { mounted, node as fixtureNode } from '@flocker/web-ui/testing';
import { EXIT } from './errors';
import { runCli } from './testing/runCli';

const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const D1 = '11111111-1111-4111-8111-111111111111';
const S1 = '33333333-3333-4333-8333-333333333333';

const dataset: DatasetConfiguration = {
  dataset_id: D1,
  primary: A,
  maximum_size: 128 * 1024 * 1024,
  metadata: { name: 'pg' },
  deleted: false,
};
const snap: SnapshotConfiguration = {
  snapshot_id: S1,
  dataset_id: D1,
  metadata: { name: 'nightly' },
  created_at: '2026-01-01T00:00:00.000Z',
};

/** The control service after the deletion was recorded: nothing reported gone yet, or (gone) nothing left. */
function client(gone: boolean): FlockerClient {
  const cluster = (): ClusterSnapshot => ({
    generation: '1',
    configuration_tag: 't',
    datasets: gone ? [] : [{ ...dataset, deleted: true }],
    leases: [],
    // Still mounted there until its node destroys it.
    nodes: [
      fixtureNode(A, '10.0.0.1', { last_seen: new Date().toISOString(), manifestations: gone ? [] : [mounted(D1)] }),
    ],
    snapshots: gone ? [] : [snap],
  });
  const fake = {
    listDatasets: async () => [dataset],
    listLeases: async () => [],
    waitForCluster: async () => cluster(),
    watchCluster: () => ({
      [Symbol.asyncIterator]: async function* () {
        yield cluster();
      },
    }),
    deleteDataset: async () => ({ ...dataset, deleted: true }),
    listSnapshots: async () => [snap],
    deleteSnapshot: async () => ({ ...snap, deleted: true as const }),
  };
  return fake as unknown as FlockerClient;
}

describe('destroy --no-wait says the deletion is recorded, not done', () => {
  it('volumes destroy --no-wait', async () => {
    const r = await runCli(() => client(false), ['volumes', 'destroy', 'pg', '--no-wait']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^Deleting pg: recorded; its node unmounts and destroys it/);
    expect(r.out).not.toMatch(/Destroyed/);
  });

  it('snapshots destroy --no-wait', async () => {
    const r = await runCli(() => client(false), ['snapshots', 'destroy', 'nightly', '--no-wait']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^Deleting snapshot nightly: recorded; /);
    expect(r.out).not.toMatch(/Destroyed/);
  });

  it('volumes destroy (waiting until it is gone) still says Destroyed', async () => {
    const r = await runCli(() => client(true), ['volumes', 'destroy', 'pg', '--timeout', '5']);
    expect(r.code).toBe(0);
    expect(r.out).toBe('Destroyed pg');
  });
});

describe('a wait that times out says the change goes on (s26 USER-W)', () => {
  // `flocker volumes create agdown --timeout 8` with the agent stopped: "timed out after 8s while creating", and the
  // volume was mounted once the agent was back; nothing said that the create was still on.
  it('volumes destroy --timeout 0 of a volume its node has not yet destroyed', async () => {
    const r = await runCli(() => client(false), ['volumes', 'destroy', 'pg', '--timeout', '0']);
    expect(r.code).toBe(EXIT.TIMEOUT);
    expect(r.err).toMatch(
      /timed out after 0s while .*\. The change stays recorded and goes on when it can \(flocker status\); --timeout waits longer/,
    );
  });
});
