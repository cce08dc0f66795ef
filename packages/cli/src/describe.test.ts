import { A, B, D1, D2, actionError, backend, dataset, mounted, node, snapshot } from '@flocker/web-ui/testing';
import { describeText, describeVolume, usedText } from './describe';

const S1 = '51515151-0000-4000-8000-000000000051';

describe('describeVolume', () => {
  const d = dataset(D1, 'pgdata', A, { metadata: { name: 'pgdata', owner: 'alice' } });
  const cluster = snapshot({
    datasets: [d],
    nodes: [
      node(A, '10.0.0.1', { manifestations: [mounted(D1)], errors: [actionError(D1)] }),
      node(B, '10.0.0.2', { volumes: [backend(D1, 'i-10.0.0.1'), { ...backend(D1, null), blockdevice_id: 'vol-2' }] }),
    ],
  });
  const x = describeVolume(
    cluster,
    d,
    [{ dataset_id: D1, node_uuid: A, expires: null, holders: ['docker'] }],
    [
      { snapshot_id: S1, dataset_id: D1, metadata: { name: 'nightly' }, created_at: '2026-01-01T00:00:00.000Z' },
      { snapshot_id: S1.replace('51', '52'), dataset_id: D2, metadata: {}, created_at: '2026-01-01T00:00:00.000Z' },
    ],
    [
      { time: '2026-01-02T00:00:00.000Z', kind: 'node_back', node_uuid: A, message: 'node 10.0.0.1 is back' },
      { time: '2026-01-01T00:00:00.000Z', kind: 'node_dead', node_uuid: A, message: 'node 10.0.0.1 is dead' },
      { time: '2026-01-01T00:00:00.000Z', kind: 'node_dead', node_uuid: B, message: 'other node' },
      {
        time: '2026-01-01T00:00:01.000Z',
        kind: 'lease_released_dead_node',
        dataset_id: D2,
        node_uuid: B,
        message: 'other volume',
      },
    ],
  );
  it('every node that has it: mounted there, a detached backend volume (the attached one is the mount)', () => {
    expect(x.nodes.map((n) => [n.host, n.status, n.blockdevice_id])).toEqual([
      ['10.0.0.1', 'mounted', `vol-${D1}`],
      ['10.0.0.2', 'backend', 'vol-2'],
    ]);
  });
  it('the lease on a host with its holders, only its snapshots, its errors, its events oldest first', () => {
    expect(x.lease).toMatchObject({ node: '10.0.0.1', holders_text: 'docker' });
    expect(x.snapshots.map((s) => s.name)).toEqual(['nightly']);
    expect(x.errors).toHaveLength(1);
    expect(x.events.map((e) => e.kind)).toEqual(['node_dead', 'node_back']);
    expect(x.volume).toMatchObject({ name: 'pgdata', state: 'mounted', node: '10.0.0.1' });
  });
  it('text: metadata, nodes, lease, snapshots, the last error with its reason, events', () => {
    const t = describeText(x);
    expect(t).toMatch(/^Name: +pgdata$/m);
    expect(t).toMatch(/^ {2}owner=alice$/m);
    expect(t).toMatch(/^ {2}10\.0\.0\.1: mounted at \/flocker\//m);
    expect(t).toMatch(/^ {2}10\.0\.0\.2: detached/m);
    expect(t).toMatch(/^Lease: +held by 10\.0\.0\.1 \(docker\)$/m);
    expect(t).toMatch(/^ {2}nightly: requested$/m);
    expect(t).toMatch(/^Last error: +\S+ failed on 10\.0\.0\.1 .*\(\w+\)$/m);
    expect(t).toMatch(/node_dead +node 10\.0\.0\.1 is dead/);
  });
  it('a local volume (issue 24): the move running now and the standby replica with its age', () => {
    const MiB = 1024 * 1024;
    const local = dataset(D1, 'pgdata', B);
    const c = snapshot({
      datasets: [local],
      nodes: [
        node(A, 'a', {
          manifestations: [mounted(D1)],
          moves: [{ dataset_id: D1, to: B, phase: 'copying', rounds: 2, bytes_sent: 48 * MiB, bytes_total: 64 * MiB }],
        }),
        node(B, 'b', {
          replicas: [{ dataset_id: D1, node_uuid: A, snapshot: 'r-1', taken_at: '2026-12-04T12:00:00.000Z' }],
        }),
      ],
    });
    const y = describeVolume(c, local, [], [], []);
    expect(y.local_move).toMatchObject({ from: { host: 'a' }, to: { host: 'b' }, phase: 'copying', percent: 100 });
    expect(y.replica).toEqual({ node_uuid: A, host: 'a', taken_at: '2026-12-04T12:00:00.000Z' });
    const t = describeText(y, Date.parse('2026-12-04T12:00:42.000Z'));
    expect(t).toMatch(/^Moving: +copying what changed on a to b: all 64 MiB copied, 48 MiB sent, 2 rounds done$/m);
    expect(t).toMatch(/^Replica: +replica on a, 42 s old$/m);
  });
  it('nothing known: says none', () => {
    const t = describeText(describeVolume(snapshot(), dataset(D2, 'new', B), [], [], []));
    expect(t).not.toMatch(/^(Moving|Replica):/m);
    expect(t).toMatch(/^On nodes: +none$/m);
    expect(t).toMatch(/^Lease: +none$/m);
    expect(t).toMatch(/^Last error: +none$/m);
    expect(t).toMatch(/^Events: +none$/m);
    expect(t).toMatch(/^Used: +-$/m);
  });
  it('used: bytes of maximum with the percentage, the bytes alone without a maximum, - until measured', () => {
    const GiB = 1024 ** 3;
    expect(usedText(1.5 * GiB, 10 * GiB)).toBe('1.5 GiB of 10 GiB (15%)');
    expect(usedText(4096, null)).toBe('4 KiB');
    expect(usedText(null, 10 * GiB)).toBe('-');
  });
  it('used: of the size its node rounded up to, as Size says (s25 USER-V: "65 MiB" beside "0 B of 64 MiB")', () => {
    const MiB = 1024 * 1024;
    const odd = dataset(D1, 'odd', A, { maximum_size: 64 * MiB + 1 });
    const cluster = snapshot({
      datasets: [odd],
      nodes: [node(A, '10.0.0.1', { manifestations: [{ ...mounted(D1), size: 65 * MiB, used_bytes: 13 * MiB }] })],
    });
    const t = describeText(describeVolume(cluster, odd, [], [], []));
    expect(t).toMatch(/^Size: +65 MiB \(67108865 bytes asked for/m);
    expect(t).toMatch(/^Used: +13 MiB of 65 MiB \(20%\)$/m);
  });
});
