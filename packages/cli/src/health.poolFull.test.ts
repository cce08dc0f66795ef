/**
 * T3 review (session 18): a full loopback pool is invisible. Volumes are sparse files, so a
 * 10 GiB volume is created on a pool with 300 MiB free; once the pool's file system is full,
 * the loop device fails writes, the volume's ext4 aborts its journal and goes read-only, and
 * the container sees EIO / "Read-only file system". The node reports available_bytes: 0, yet
 * `flocker status` says "1/1 converged", exits 0 and names nothing (reproduced by hand on
 * `./dev cluster up 1` with a 300 MiB tmpfs as the pool: /work/notes/s18-T3-findings.md).
 * Agents report free bytes rounded down to 64 MiB (dataset-agent capacity.ts): 0 is "less than that".
 */
import type { ClusterSnapshot, DatasetConfiguration, NodeState } from '@flocker/api';
import { clusterHealth, volumeState } from './health';

const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const D = '11111111-1111-4111-8111-111111111111';

const fullNode: NodeState = {
  uuid: A,
  era: 'e',
  host: 'host-a',
  instance_id: 'i-a',
  backend: 'loopback',
  manifestations: [{ dataset_id: D, blockdevice_id: 'v', size: 10 * 2 ** 30, status: 'mounted', path: '/p' }],
  volumes: [],
  errors: [],
  alive: true,
  last_seen: 'now',
  available_bytes: 0,
};
const dataset: DatasetConfiguration = {
  dataset_id: D,
  primary: A,
  maximum_size: 10 * 2 ** 30,
  metadata: { name: 'full' },
  deleted: false,
};
const snapshot: ClusterSnapshot = {
  generation: 'g',
  configuration_tag: 't',
  datasets: [dataset],
  leases: [],
  nodes: [fullNode],
};

describe('flocker status on a full loopback pool', () => {
  it('names the node whose pool has no free space left (its volumes cannot take writes)', () => {
    const h = clusterHealth(snapshot, [dataset]);
    expect(h.problems).toEqual(expect.arrayContaining([expect.stringMatching(/host-a.*(full|no (free )?space)/i)]));
    // Sharpened: one line, saying what fails and what to do.
    expect(h.problems).toEqual([
      'node host-a: its storage has no free space left (less than 64 MiB): writes to its volumes fail and their ' +
        'file systems go read-only; free space there',
    ]);
  });

  it('says nothing of a node with space left, one with no figure, or a dead one (its own line says that)', () => {
    for (const n of [
      { ...fullNode, available_bytes: 64 * 2 ** 20 },
      (({ available_bytes: _, ...rest }) => rest)(fullNode),
      { ...fullNode, alive: false },
    ]) {
      const h = clusterHealth({ ...snapshot, nodes: [n] }, [dataset]);
      expect(h.problems.filter((p) => /space/.test(p))).toEqual([]);
    }
  });
});

describe('a volume whose file system went read-only (the agent reports it: readOnlyMounts)', () => {
  const error = {
    dataset_id: D,
    action: 'observe',
    code: 'FILESYSTEM_READ_ONLY',
    message: 'its file system (mounted at /p) went read-only after a write error, …',
    attempts: 1,
    since: '2026-12-06T05:00:00.000Z',
  };
  const withError = { ...snapshot, nodes: [{ ...fullNode, available_bytes: 2 ** 30, errors: [error] }] };

  it('is not converged: status, list and show say it, as what the node sees, not as a failed attempt', () => {
    const line = `on host-a (since ${error.since}): ${error.message} (FILESYSTEM_READ_ONLY)`;
    const h = clusterHealth(withError, [dataset]);
    expect(h.converged).toBe(0);
    expect(h.problems).toEqual([`full: mounted, but ${line}`]);
    expect(volumeState(withError, dataset)).toMatchObject({ state: 'mounted', reason: line });
  });
});
