import { calculateLocalChanges, type LocalClusterNode, type LocalObservation } from './localChanges';

const ME = '11111111-1111-4111-8111-111111111111';
const B = '22222222-2222-4222-8222-222222222222';
const D = '33333333-3333-4333-8333-333333333333';
const ctx = { nodeUuid: ME, mountRoot: '/flocker', defaultSize: 1000 };
const PATH = `/flocker/${D}`;

const node = (uuid: string, alive: boolean, copies: string[] = []): LocalClusterNode => ({
  uuid,
  host: uuid === B ? '10.0.0.2' : '10.0.0.1',
  alive,
  copies,
});
const here = (copies: LocalObservation['copies'] = [], moving: string[] = []): LocalObservation => ({
  copies,
  moving: new Set(moving),
});
const dataset = (primary: string, extra: { deleted?: boolean; maximumSize?: number | null } = {}) => [
  {
    datasetId: D,
    primary,
    maximumSize: extra.maximumSize === undefined ? 2000 : extra.maximumSize,
    deleted: extra.deleted ?? false,
  },
];

describe('decisions of an agent with a local backend', () => {
  it('a new dataset for this node: created here, then mounted, then nothing', () => {
    const nodes = [node(ME, true), node(B, true)];
    expect(calculateLocalChanges(dataset(ME), nodes, here(), ctx)).toEqual([
      { kind: 'create', datasetId: D, size: 2000, mountPath: PATH },
    ]);
    expect(
      calculateLocalChanges(dataset(ME), nodes, here([{ datasetId: D, size: 2000, mountPoints: [] }]), ctx),
    ).toEqual([{ kind: 'mount', datasetId: D, mountPath: PATH }]);
    expect(
      calculateLocalChanges(dataset(ME), nodes, here([{ datasetId: D, size: 2000, mountPoints: [PATH] }]), ctx),
    ).toEqual([]);
  });

  it('grows the limit when the configured size grows (never shrinks it)', () => {
    const nodes = [node(ME, true)];
    const copy = { datasetId: D, size: 1000, mountPoints: [PATH] };
    expect(calculateLocalChanges(dataset(ME), nodes, here([copy]), ctx)).toEqual([
      { kind: 'resize', datasetId: D, size: 2000 },
    ]);
    expect(calculateLocalChanges(dataset(ME, { maximumSize: 500 }), nodes, here([copy]), ctx)).toEqual([]);
  });

  it('moved here while another live node holds the copy: wait for it (never a blank one)', () => {
    expect(calculateLocalChanges(dataset(ME), [node(ME, true), node(B, true, [D])], here(), ctx)).toEqual([]);
  });

  it('moved here while the only copy is on a dead node: refused, naming the node', () => {
    const [action] = calculateLocalChanges(dataset(ME), [node(ME, true), node(B, false, [D])], here(), ctx);
    expect(action).toMatchObject({ kind: 'refuse', code: 'SOURCE_UNREACHABLE' });
    expect(action?.kind === 'refuse' && action.message).toContain(B);
  });

  it('moved away: push the copy to the new primary, then unmount the host path while it moves', () => {
    const nodes = [node(ME, true, [D]), node(B, true)];
    const copy = { datasetId: D, size: 2000, mountPoints: [PATH] };
    expect(calculateLocalChanges(dataset(B), nodes, here([copy]), ctx)).toEqual([
      { kind: 'moveOut', datasetId: D, to: { uuid: B, host: '10.0.0.2' }, size: 2000 },
    ]);
    expect(calculateLocalChanges(dataset(B), nodes, here([copy], [D]), ctx)).toEqual([
      { kind: 'unmount', datasetId: D, mountPath: PATH },
    ]);
    expect(calculateLocalChanges(dataset(B), nodes, here([{ ...copy, mountPoints: [] }], [D]), ctx)).toEqual([]);
  });

  it('the new primary holds its copy already (a mover killed after the promote): ours is let go of, not sent again', () => {
    const nodes = [node(ME, true, [D]), node(B, true, [D])];
    const copy = { datasetId: D, size: 2000, mountPoints: [PATH] };
    expect(calculateLocalChanges(dataset(B), nodes, here([copy]), ctx)).toEqual([
      { kind: 'unmount', datasetId: D, mountPath: PATH },
    ]);
    expect(calculateLocalChanges(dataset(B), nodes, here([{ ...copy, mountPoints: [] }]), ctx)).toEqual([
      { kind: 'retire', datasetId: D },
    ]);
    // Even while the new primary is dead: its copy is the newer one.
    expect(
      calculateLocalChanges(
        dataset(B),
        [node(ME, true, [D]), node(B, false, [D])],
        here([{ ...copy, mountPoints: [] }]),
        ctx,
      ),
    ).toEqual([{ kind: 'retire', datasetId: D }]);
  });

  it('moved back here while the move away runs: taken back', () => {
    const copy = { datasetId: D, size: 2000, mountPoints: [] };
    expect(calculateLocalChanges(dataset(ME), [node(ME, true, [D]), node(B, true)], here([copy], [D]), ctx)).toEqual([
      { kind: 'cancelMove', datasetId: D },
    ]);
  });

  it('moved to a dead node: the copy stays here, nothing sent', () => {
    const copy = { datasetId: D, size: 2000, mountPoints: [PATH] };
    expect(calculateLocalChanges(dataset(B), [node(ME, true, [D]), node(B, false)], here([copy]), ctx)).toEqual([]);
  });

  it('deleted: unmounted, then destroyed; not while a move of it runs', () => {
    const nodes = [node(ME, true, [D])];
    const mounted = { datasetId: D, size: 2000, mountPoints: [PATH] };
    expect(calculateLocalChanges(dataset(ME, { deleted: true }), nodes, here([mounted]), ctx)).toEqual([
      { kind: 'unmount', datasetId: D, mountPath: PATH },
    ]);
    expect(
      calculateLocalChanges(dataset(ME, { deleted: true }), nodes, here([{ ...mounted, mountPoints: [] }]), ctx),
    ).toEqual([{ kind: 'destroy', datasetId: D }]);
    expect(calculateLocalChanges(dataset(ME, { deleted: true }), nodes, here([mounted], [D]), ctx)).toEqual([]);
    expect(calculateLocalChanges(dataset(ME, { deleted: true }), nodes, here(), ctx)).toEqual([]);
    // What a move away left here (its final snapshot) goes with the dataset.
    expect(
      calculateLocalChanges(dataset(B, { deleted: true }), nodes, { ...here(), retained: new Set([D]) }, ctx),
    ).toEqual([{ kind: 'destroy', datasetId: D }]);
  });

  it('the default size for a dataset without maximum_size', () => {
    expect(calculateLocalChanges(dataset(ME, { maximumSize: null }), [node(ME, true)], here(), ctx)).toEqual([
      { kind: 'create', datasetId: D, size: 1000, mountPath: PATH },
    ]);
  });
});
