/**
 * The data-node marker in the configuration functions that change a dataset's primary (issue 24):
 * a dataset's update, a container's move and flocker-deploy record the rule's answer in the same
 * change (one version step), ask the rule only when the primary changes, and stay pure (the rule
 * is passed in). The marker does not count toward the metadata key limit of an update.
 */
import { ContainerConfiguration, METADATA_DATA_NODE_KEY, METADATA_MAX_KEYS } from '@flocker/api';
import { type Configuration, createDataset, emptyConfiguration, registerNode, updateDataset } from './configuration';
import { compose, createContainer, moveContainer } from './containers';
import type { DataNodeRule } from './dataNode';
import { ConfigurationError } from './errors';
import { A, B, C, D1, T0 } from './testing/fixtures';

function withDataset(metadata: Record<string, string> = { name: 'web' }): Configuration {
  let c = emptyConfiguration;
  for (const [uuid, host] of [
    [A, '10.0.0.1'],
    [B, '10.0.0.2'],
    [C, '10.0.0.3'],
  ] as const)
    c = registerNode(c, { uuid, host });
  return createDataset(c, { primary: A, dataset_id: D1, metadata }).config;
}

/** A rule answering `answer`, recording what it was asked. */
function rule(answer: string | null | undefined): DataNodeRule & { asked: [string, string][] } {
  const asked: [string, string][] = [];
  const f: DataNodeRule = (d, to) => {
    asked.push([d.primary, to]);
    return answer;
  };
  return Object.assign(f, { asked });
}

describe('updateDataset records the marker with the move', () => {
  it('a move: the rule asked with the old primary, its answer in the same change', () => {
    const c = withDataset();
    const r = rule(A);
    const moved = updateDataset(c, D1, { primary: B }, T0, r);
    expect(r.asked).toEqual([[A, B]]);
    expect(moved.config.version).toBe(c.version + 1);
    expect(moved.result).toEqual({
      dataset_id: D1,
      primary: B,
      metadata: { name: 'web', [METADATA_DATA_NODE_KEY]: A },
      deleted: false,
    });
    expect(moved.config.datasets.get(D1)).toBe(moved.result);
  });

  it('no move (the same primary, a resize, metadata only): the rule not asked, no marker', () => {
    const c = withDataset();
    const r = rule(A);
    expect(updateDataset(c, D1, { primary: A }, T0, r).config).toBe(c);
    expect(updateDataset(c, D1, { maximum_size: 1 << 27 }, T0, r).result.metadata).toEqual({ name: 'web' });
    expect(
      updateDataset(c, D1, { metadata: { 'clusterhq:flocker:replicas': '1' } }, T0, r).result.metadata,
    ).not.toHaveProperty(METADATA_DATA_NODE_KEY);
    expect(r.asked).toEqual([]);
  });

  it('a move with a metadata change: both, the marker the rule’s', () => {
    const moved = updateDataset(
      withDataset(),
      D1,
      { primary: B, metadata: { 'clusterhq:flocker:replicas': '1' } },
      T0,
      rule(C),
    );
    expect(moved.result.metadata).toEqual({
      name: 'web',
      'clusterhq:flocker:replicas': '1',
      [METADATA_DATA_NODE_KEY]: C,
    });
  });

  it('null removes a marker; undefined (a block backend) and the default rule leave it', () => {
    const marked = updateDataset(withDataset(), D1, { primary: B }, T0, rule(A)).config;
    expect(updateDataset(marked, D1, { primary: C }, T0, rule(null)).result.metadata).toEqual({ name: 'web' });
    expect(updateDataset(marked, D1, { primary: C }, T0, rule(undefined)).result.metadata).toEqual({
      name: 'web',
      [METADATA_DATA_NODE_KEY]: A,
    });
    expect(updateDataset(marked, D1, { primary: C }, T0).result.metadata).toEqual({
      name: 'web',
      [METADATA_DATA_NODE_KEY]: A,
    });
  });

  // Review FR: the opt-in answers one move's refusal. Kept, it would let a later move, in a later restart race (its
  // holder not reported again), start the dataset empty with nobody asked, and the holder, once back, retire its copy.
  it('a move of a local dataset (the rule answers) drops accept-data-loss; one setting it keeps it; a block one leaves it', () => {
    const optedIn = withDataset({ name: 'web', 'clusterhq:flocker:accept-data-loss': 'true' });
    for (const answer of [A, null])
      expect(updateDataset(optedIn, D1, { primary: B }, T0, rule(answer)).result.metadata).not.toHaveProperty(
        'clusterhq:flocker:accept-data-loss',
      );
    expect(
      updateDataset(
        optedIn,
        D1,
        { primary: B, metadata: { 'clusterhq:flocker:accept-data-loss': 'true' } },
        T0,
        rule(A),
      ).result.metadata,
    ).toEqual({ name: 'web', 'clusterhq:flocker:accept-data-loss': 'true', [METADATA_DATA_NODE_KEY]: A });
    expect(updateDataset(optedIn, D1, { primary: B }, T0, rule(undefined)).result.metadata).toEqual(
      optedIn.datasets.get(D1)?.metadata,
    );
    // A container's move too.
    const c = createContainer(
      optedIn,
      ContainerConfiguration.parse({
        name: 'web',
        node_uuid: A,
        image: 'nginx',
        volumes: [{ dataset_id: D1, mountpoint: '/d' }],
      }),
    ).config;
    expect(moveContainer(c, 'web', B, T0, rule(A)).config.datasets.get(D1)?.metadata).toEqual({
      name: 'web',
      [METADATA_DATA_NODE_KEY]: A,
    });
  });

  it('a refused move records nothing (the rule is asked only once the move is allowed)', () => {
    const r = rule(A);
    expect(() => updateDataset(withDataset(), D1, { primary: '99999999-9999-4999-8999-999999999999' }, T0, r)).toThrow(
      ConfigurationError,
    );
    expect(r.asked).toEqual([]);
  });

  it('the marker does not count toward the metadata key limit of an update', () => {
    const keys = Object.fromEntries(Array.from({ length: METADATA_MAX_KEYS - 1 }, (_, i) => [`k${i}`, 'v']));
    const marked = updateDataset(withDataset(keys), D1, { primary: B }, T0, rule(A)).config;
    const sixteenth = updateDataset(marked, D1, { metadata: { 'clusterhq:flocker:replicas': '1' } }, T0);
    expect(Object.keys(sixteenth.result.metadata)).toHaveLength(METADATA_MAX_KEYS + 1);
    try {
      updateDataset(sixteenth.config, D1, { metadata: { 'clusterhq:flocker:accept-data-loss': 'true' } }, T0);
      throw new Error('expected METADATA_TOO_MANY_KEYS');
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigurationError);
      expect((e as ConfigurationError).code).toBe('METADATA_TOO_MANY_KEYS');
      expect((e as Error).message).toContain(`would have ${METADATA_MAX_KEYS + 1} keys`);
    }
  });
});

describe('a container’s move and flocker-deploy record it too', () => {
  const container = ContainerConfiguration.parse({
    name: 'web',
    node_uuid: A,
    image: 'nginx',
    volumes: [{ dataset_id: D1, mountpoint: '/d' }],
  });

  it('moveContainer: the dataset follows with the marker, in the same change', () => {
    const c = createContainer(withDataset(), container).config;
    const r = rule(A);
    const moved = moveContainer(c, 'web', B, T0, r);
    expect(r.asked).toEqual([[A, B]]);
    expect(moved.config.datasets.get(D1)).toMatchObject({ primary: B, metadata: { [METADATA_DATA_NODE_KEY]: A } });
  });

  it('compose: a container placed on another node moves its dataset with the marker', () => {
    const c = createContainer(withDataset(), container).config;
    const r = rule(A);
    const composed = compose(
      c,
      { version: 1, applications: { web: { image: 'nginx', volume: { mountpoint: '/d' } } } },
      { version: 1, nodes: { [B]: ['web'] } },
      T0,
      undefined,
      r,
    );
    expect(r.asked).toEqual([[A, B]]);
    expect(composed.config.datasets.get(D1)).toMatchObject({
      primary: B,
      metadata: { name: 'web', [METADATA_DATA_NODE_KEY]: A },
    });
  });
});
