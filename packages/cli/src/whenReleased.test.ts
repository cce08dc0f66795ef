/**
 * `flocker volumes move V NODE --when-released` (issue 24, U's item 5): a local volume a container on its node
 * still uses is copied now and moved once released. The flag goes into the same update as the move; a LEASE_HELD
 * refusal of a local volume without it says to add it; with it, the service's reason is shown.
 */
import { type ClusterSnapshot, type FlockerClient, FlockerApiError, type UpdateDatasetRequest } from '@flocker/api';
import { A, B, D1, dataset, node, snapshot } from '@flocker/web-ui/testing';
import { runCli } from './testing/runCli';

const MiB = 1024 * 1024;
const DOCKER_LEASE = { dataset_id: D1, node_uuid: A, expires: null, holders: ['docker'] };

/** big on a (leased by a's Docker plugin), both nodes on `backend`. */
function leased(backend: string): ClusterSnapshot {
  return snapshot({
    datasets: [dataset(D1, 'big', A)],
    nodes: [
      node(A, 'a', {
        backend,
        manifestations: [{ dataset_id: D1, blockdevice_id: D1, size: 64 * MiB, status: 'mounted', path: '/a' }],
      }),
      node(B, 'b', { backend }),
    ],
    leases: [DOCKER_LEASE],
  });
}

/** The move under way: a copies to b while its container runs, then b mounts it. */
function phases(): ClusterSnapshot[] {
  const copying = leased('local-btrfs');
  copying.datasets[0]!.primary = B;
  copying.generation = '2';
  copying.nodes[0]!.manifestations = [];
  copying.nodes[0]!.moves = [
    { dataset_id: D1, to: B, phase: 'copying', rounds: 0, bytes_sent: 16 * MiB, bytes_total: 64 * MiB },
  ];
  const waiting = structuredClone(copying);
  waiting.generation = '3';
  waiting.nodes[0]!.moves = [
    { dataset_id: D1, to: B, phase: 'waitingForRelease', rounds: 2, bytes_sent: 64 * MiB, bytes_total: 64 * MiB },
  ];
  const done = structuredClone(waiting);
  done.generation = '4';
  done.nodes[0]!.moves = [];
  done.nodes[1]!.manifestations = [
    { dataset_id: D1, blockdevice_id: D1, size: 64 * MiB, status: 'mounted', path: '/b' },
  ];
  done.nodes[1]!.last_seen = new Date(Date.now() + 60_000).toISOString();
  return [copying, waiting, done];
}

function client(
  s: ClusterSnapshot,
  update: (req: UpdateDatasetRequest) => void,
  after: ClusterSnapshot[] = [],
): FlockerClient {
  let asked = false;
  const queue = [...after];
  return {
    listDatasets: async () => s.datasets,
    listLeases: async () => s.leases,
    waitForCluster: async () => (!asked ? s : queue.length > 1 ? queue.shift() : (queue[0] ?? s)),
    updateDataset: async (_id: string, req: UpdateDatasetRequest) => {
      update(req);
      asked = true;
      return { ...s.datasets[0]!, primary: req.primary ?? A };
    },
    listDatasetState: async () => [{ dataset_id: D1, primary: B, maximum_size: 64 * MiB, path: '/b' }],
  } as unknown as FlockerClient;
}

const refuse = (description: string) => () => {
  throw new FlockerApiError(409, 'LEASE_HELD', description);
};

describe('flocker volumes move --when-released', () => {
  it('sends when_released in the move itself; without the flag the update is as before', async () => {
    const updates: UpdateDatasetRequest[] = [];
    const s = leased('local-btrfs');
    const r = await runCli(
      () => client(s, (u) => updates.push(u)),
      ['volumes', 'move', 'big', 'b', '--when-released', '--no-wait'],
    );
    expect(r.code).toBe(0);
    expect(updates).toEqual([{ primary: B, when_released: true }]);
    await runCli(
      () => client(leased('loopback'), (u) => updates.push(u)),
      ['volumes', 'move', 'big', 'b', '--no-wait'],
    );
    expect(updates[1]).toEqual({ primary: B });
  });

  it('a local volume refused LEASE_HELD without it: the error says to add --when-released', async () => {
    const r = await runCli(
      () => client(leased('local-btrfs'), refuse('node a holds a lease. Release the lease first.')),
      ['volumes', 'move', 'big', 'b'],
    );
    expect(r.code).toBe(4);
    expect(r.err).toMatch(/a container there uses it/);
    expect(r.err).toMatch(/add --when-released: the data is copied to the new node now while it stays in use on a/);
  });

  it('a block volume refused: no --when-released advice (it does not apply)', async () => {
    const r = await runCli(
      () => client(leased('loopback'), refuse('node a holds a lease. Release the lease first.')),
      ['volumes', 'move', 'big', 'b'],
    );
    expect(r.code).toBe(4);
    expect(r.err).not.toMatch(/when-released/);
  });

  it('refused with the flag: the service says why it does not apply', async () => {
    const why = 'The dataset cannot move: when_released applies only to local storage: its backend would unmount it.';
    const r = await runCli(
      () => client(leased('loopback'), refuse(why)),
      ['volumes', 'move', 'big', 'b', '--when-released'],
    );
    expect(r.code).toBe(4);
    expect(r.err).toContain(`volume big cannot move, even when released: ${why}`);
  });

  it('--wait waits through the copy and the wait for the release, and ends mounted on the new node', async () => {
    const r = await runCli(
      () => client(leased('local-btrfs'), () => undefined, phases()),
      ['volumes', 'move', 'big', 'b', '--when-released', '--timeout', '20'],
    );
    expect(r.err).toMatch(/Moving big to b \(finishing once nothing on a uses it\)/);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/big is mounted on b at \/b/);
  });

  it('a timed-out wait names the phase and says the move finishes once released', async () => {
    const waiting = phases()[1]!;
    const r = await runCli(
      () => client(leased('local-btrfs'), () => undefined, [waiting]),
      ['volumes', 'move', 'big', 'b', '--when-released', '--timeout', '0'],
    );
    expect(r.code).toBe(5);
    expect(r.err).toMatch(/waiting for its users to release the volume/);
    expect(r.err).toMatch(/the move goes on, finishing once nothing on a uses it/);
  });

  it('--help explains it', async () => {
    const log = jest.spyOn(console, 'log').mockImplementation(() => undefined);
    const text = await runCli(() => client(leased('local-btrfs'), () => undefined), ['volumes', 'move', '--help'])
      .then(() => log.mock.calls.map((c: unknown[]) => c.join(' ')).join('\n'))
      .finally(() => log.mockRestore());
    expect(text).toMatch(/--when-released/);
    const flat = text.replace(/\s+/g, ' ');
    expect(flat).toMatch(
      /copied to <node> now while it stays in use there; the move finishes once every container there lets it go/,
    );
  });
});
