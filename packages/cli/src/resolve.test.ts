import type { DatasetConfiguration, NodeState } from '@flocker/api';
import { resolveDataset, resolveNode } from './cli';
import { EXIT } from './errors';

const ds = (id: string, name?: string, deleted = false): DatasetConfiguration => ({
  dataset_id: id,
  primary: 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa',
  metadata: name ? { name } : {},
  deleted,
  maximum_size: null,
});
const D1 = '11111111-1111-4111-8111-111111111111';
const D2 = '11112222-1111-4111-8111-111111111111';
const D3 = '33333333-3333-4333-8333-333333333333';

describe('resolveDataset', () => {
  const all = [ds(D1, 'pg'), ds(D2, 'web'), ds(D3, 'old', true)];
  it('finds by name, id and unique prefix', () => {
    expect(resolveDataset(all, 'pg').dataset_id).toBe(D1);
    expect(resolveDataset(all, D2.toUpperCase()).dataset_id).toBe(D2);
    expect(resolveDataset(all, '11112').dataset_id).toBe(D2);
  });
  it('refuses ambiguous prefixes and deleted or unknown volumes', () => {
    expect(() => resolveDataset(all, '1111')).toThrow(expect.objectContaining({ exitCode: EXIT.USAGE }));
    expect(() => resolveDataset(all, 'old')).toThrow(expect.objectContaining({ exitCode: EXIT.NOT_FOUND }));
    expect(() => resolveDataset(all, 'nope')).toThrow(/no volume named/);
  });
  it('never resolves the empty or a blank name (it would pick the first unnamed volume)', () => {
    const unnamed = [ds(D3), ds(D1, 'pg')];
    for (const ref of ['', ' ', '    '])
      expect(() => resolveDataset(unnamed, ref)).toThrow(expect.objectContaining({ exitCode: EXIT.USAGE }));
  });
  it('looks names up only by the volume-name rule', () => {
    const odd = [ds(D3, 'bad name!')];
    expect(() => resolveDataset(odd, 'bad name!')).toThrow(expect.objectContaining({ exitCode: EXIT.NOT_FOUND }));
    expect(resolveDataset(odd, D3).dataset_id).toBe(D3);
  });
  it('finds a deleted volume only when asked to (it is still being deleted)', () => {
    expect(resolveDataset(all, 'old', { includeDeleted: (d) => d.dataset_id === D3 }).dataset_id).toBe(D3);
    expect(() => resolveDataset(all, 'old', { includeDeleted: () => false })).toThrow(/no volume named/);
    // A live volume of the same name wins over one being deleted.
    const reused = [ds(D3, 'pg', true), ds(D1, 'pg')];
    expect(resolveDataset(reused, 'pg', { includeDeleted: () => true }).dataset_id).toBe(D1);
  });
});

describe('resolveNode', () => {
  const n = (uuid: string, host: string) => ({ uuid, host }) as NodeState;
  const nodes = [
    n('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '10.0.0.1'),
    n('abbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', '10.0.0.2'),
  ];
  it('finds by uuid, prefix and host', () => {
    expect(resolveNode(nodes, '10.0.0.2').uuid).toMatch(/^abbb/);
    expect(resolveNode(nodes, 'aa').host).toBe('10.0.0.1');
    expect(() => resolveNode(nodes, 'a')).toThrow(/matches 2 nodes/);
    expect(() => resolveNode(nodes, '10.9.9.9')).toThrow(expect.objectContaining({ exitCode: EXIT.NOT_FOUND }));
  });
  it('never resolves the empty node (it would pick the only node)', () => {
    expect(() => resolveNode([nodes[0]!], '')).toThrow(expect.objectContaining({ exitCode: EXIT.USAGE }));
    expect(() => resolveNode([nodes[0]!], '  ')).toThrow(expect.objectContaining({ exitCode: EXIT.USAGE }));
  });
});
