import { A, B, D1, D2, dataset, mounted, node, snapshot } from '@flocker/web-ui/testing';
import {
  filterVolumes,
  globPattern,
  leaseView,
  parseLabel,
  sortVolumes,
  viewAfter,
  volumeView,
  type VolumeView,
} from './volumes';

const D3 = 'd3d3d3d3-0000-4000-8000-0000000000d3';

describe('volumeView: one shape for every volumes command', () => {
  it('names the volume, its host and UUID, state, path and reported size', () => {
    const s = snapshot({ nodes: [node(A, '10.0.0.1', { manifestations: [mounted(D1)] }), node(B, '10.0.0.2')] });
    const v = volumeView(s, dataset(D1, 'pgdata', A));
    expect(v).toMatchObject({
      dataset_id: D1,
      name: 'pgdata',
      node: '10.0.0.1',
      node_uuid: A,
      state: 'mounted',
      path: `/flocker/${D1}`,
      size: 1,
      maximum_size: 128 * 1024 * 1024,
      deleted: false,
    });
  });

  it('used_bytes: what the node where it is mounted measured; null when not mounted or not measured', () => {
    const measured = { ...mounted(D1), used_bytes: 5 * 1024 * 1024 };
    const s = snapshot({ nodes: [node(A, '10.0.0.1', { manifestations: [measured, mounted(D2)] })] });
    expect(volumeView(s, dataset(D1, 'pgdata', A)).used_bytes).toBe(5 * 1024 * 1024);
    expect(volumeView(s, dataset(D2, 'older-agent', A)).used_bytes).toBeNull();
    expect(volumeView(snapshot(), dataset(D1, 'new', B)).used_bytes).toBeNull();
  });

  it('a long-gone deleted volume is "deleted" (as in the table), not deleting or attached', () => {
    const s = snapshot();
    const v = volumeView(s, dataset(D1, 'old', B, { deleted: true }));
    expect(v.state).toBe('deleted');
    expect(v.node).toBe('10.0.0.2');
    expect(v.size).toBeNull();
  });

  it('an unplaced volume is pending on its primary', () => {
    const v = volumeView(snapshot(), dataset(D1, 'new', B));
    expect(v).toMatchObject({ state: 'pending', node: '10.0.0.2', node_uuid: B, path: '' });
  });

  it("viewAfter keeps the write's configuration over a lagging snapshot's, unless deleted since", () => {
    const stale = snapshot({ datasets: [dataset(D1, 'pgdata', A)] });
    expect(viewAfter(stale, dataset(D1, 'pgdata', B)).primary).toBe(B);
    expect(viewAfter(stale, dataset(D1, 'pgdata', A, { deleted: true })).state).toBe('deleted');
    const gone = snapshot({ datasets: [dataset(D1, 'pgdata', A, { deleted: true })] });
    expect(viewAfter(gone, dataset(D1, 'pgdata', A)).deleted).toBe(true);
  });
});

const row = (id: string, name: string, over: Partial<VolumeView> = {}): VolumeView => ({
  ...dataset(id, name, A),
  name,
  node: '10.0.0.1',
  node_uuid: A,
  state: 'mounted',
  path: '',
  size: null,
  used_bytes: null,
  ...over,
});

describe('sortVolumes', () => {
  const rows = [
    row(D1, 'zeta', { maximum_size: 3, node: '10.0.0.2', state: 'pending' }),
    row(D2, '', { maximum_size: 1 }),
    row(D3, 'alpha', { maximum_size: 2, node: '10.0.0.2' }),
  ];
  const names = (r: VolumeView[]) => r.map((x) => x.name);
  it('by name, unnamed last', () => expect(names(sortVolumes(rows, 'name'))).toEqual(['alpha', 'zeta', '']));
  it('by size, smallest first', () => expect(names(sortVolumes(rows, 'size'))).toEqual(['', 'alpha', 'zeta']));
  it('by node, then name', () => expect(names(sortVolumes(rows, 'node'))).toEqual(['', 'alpha', 'zeta']));
  it('by state, then name', () => expect(names(sortVolumes(rows, 'state'))).toEqual(['alpha', '', 'zeta']));
  it('created keeps the given order', () => expect(names(sortVolumes(rows, 'created'))).toEqual(['zeta', '', 'alpha']));
});

describe('filters', () => {
  it('globs: * and ? anchored; regex characters are literal', () => {
    expect(globPattern('pg*').test('pgdata')).toBe(true);
    expect(globPattern('pg*').test('xpg')).toBe(false);
    expect(globPattern('a?c').test('abc')).toBe(true);
    expect(globPattern('a.c').test('abc')).toBe(false);
  });
  it('parseLabel: key=value, key alone, empty key refused', () => {
    expect(parseLabel('owner=alice')).toEqual({ key: 'owner', value: 'alice' });
    expect(parseLabel('a=b=c')).toEqual({ key: 'a', value: 'b=c' });
    expect(parseLabel('owner')).toEqual({ key: 'owner' });
    expect(parseLabel('=x')).toBeUndefined();
  });
  const rows = [
    row(D1, 'pgdata', { metadata: { name: 'pgdata', owner: 'alice' } }),
    row(D2, 'pglogs', { node_uuid: B, metadata: { name: 'pglogs', owner: 'bob' } }),
    row(D3, 'redis', { metadata: { name: 'redis' } }),
  ];
  const names = (r: VolumeView[]) => r.map((x) => x.name);
  it('by name glob (any of several) or id', () => {
    expect(names(filterVolumes(rows, { patterns: ['pg*'] }))).toEqual(['pgdata', 'pglogs']);
    expect(names(filterVolumes(rows, { patterns: ['redis', 'pgd*'] }))).toEqual(['pgdata', 'redis']);
    expect(names(filterVolumes(rows, { patterns: ['d3d3*'] }))).toEqual(['redis']);
  });
  it('by node', () => expect(names(filterVolumes(rows, { nodeUuid: B }))).toEqual(['pglogs']));
  it('by labels, all of them', () => {
    expect(names(filterVolumes(rows, { labels: [{ key: 'owner' }] }))).toEqual(['pgdata', 'pglogs']);
    expect(names(filterVolumes(rows, { labels: [{ key: 'owner', value: 'bob' }] }))).toEqual(['pglogs']);
    expect(filterVolumes(rows, { labels: [{ key: 'owner', value: 'bob' }], patterns: ['pgd*'] })).toEqual([]);
  });
  it('no filter: everything', () => expect(filterVolumes(rows, {})).toHaveLength(3));
});

describe('leaseView', () => {
  it('shows the host and keeps the UUID', () => {
    const v = leaseView(
      { dataset_id: D1, node_uuid: B, expires: null },
      [dataset(D1, 'pgdata', A)],
      [node(B, '10.0.0.2')],
    );
    expect(v).toEqual({ dataset_id: D1, node_uuid: B, expires: null, name: 'pgdata', node: '10.0.0.2' });
  });
  it('a node that never reported: a short UUID; an unknown volume: no name', () => {
    const v = leaseView({ dataset_id: D2, node_uuid: B, expires: 5 }, [], []);
    expect(v).toMatchObject({ name: '', node: B.slice(0, 8) });
  });
});
