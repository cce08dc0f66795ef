/**
 * Forgetting a retired node (session 18, review FR finding 9, review RV2 finding 6), the pure decision: which node a
 * UUID or host names, what must happen first, and the configuration without it.
 */
import {
  ContainerConfiguration,
  type DatasetConfiguration,
  METADATA_ACCEPTED_LOSS_FROM_KEY,
  METADATA_DATA_NODE_KEY,
} from '@flocker/api';
import { type Configuration, emptyConfiguration } from './configuration';
import type { NodeIdentity } from './ConfigurationStore';
import {
  type ForgetFacts,
  forgetNodeInConfiguration,
  forgetRefusals,
  identitiesToKeep,
  requireForgettable,
  resolveForgetTarget,
} from './forgetNode';
import { A, B, C, D1, D2, D3 } from './testing/fixtures';

const dataset = (id: string, primary: string, metadata: Record<string, string> = {}): DatasetConfiguration => ({
  dataset_id: id,
  primary,
  deleted: false,
  metadata,
  maximum_size: null,
});

const identity = (uuid: string, host: string, instance = `i-${uuid.slice(0, 1)}`): NodeIdentity => ({
  uuid,
  era: `era-${uuid}`,
  host,
  instance_id: instance,
  backend: 'loopback',
});

function config(datasets: DatasetConfiguration[] = [], extra: Partial<Configuration> = {}): Configuration {
  return {
    ...emptyConfiguration,
    version: 7,
    nodes: new Map([
      [A, { uuid: A, host: '10.0.0.1' }],
      [B, { uuid: B, host: '10.0.0.2' }],
    ]),
    datasets: new Map(datasets.map((d) => [d.dataset_id, d])),
    ...extra,
  };
}

/** A dead (a ghost from its identity), B alive; the service up past a node timeout. */
function facts(c: Configuration = config(), extra: Partial<ForgetFacts> = {}): ForgetFacts {
  return {
    config: c,
    identities: new Map([[A, identity(A, '10.0.0.1')]]),
    reported: new Map([
      [A, '10.0.0.1'],
      [B, '10.0.0.2'],
    ]),
    alive: (uuid) => uuid === B,
    attachedTo: () => [],
    pastStartTimeout: true,
    nodeTimeoutMs: 30_000,
    ...extra,
  };
}

describe('which node a UUID or host names', () => {
  it('a known UUID (any case), with the host it reported', () => {
    expect(resolveForgetTarget(A.toUpperCase(), facts())).toEqual({ uuid: A, host: '10.0.0.1' });
  });

  it('a host exactly one known node reported', () => {
    expect(resolveForgetTarget('10.0.0.1', facts())).toEqual({ uuid: A, host: '10.0.0.1' });
  });

  it('a node known only from its identity, or only from an accepted-loss marker', () => {
    const f = facts(config(), { reported: new Map(), identities: new Map([[C, identity(C, 'old-c')]]) });
    expect(resolveForgetTarget('old-c', f)).toEqual({ uuid: C, host: 'old-c' });
    const marked = facts(config([dataset(D1, B, { [METADATA_ACCEPTED_LOSS_FROM_KEY]: C })]), {
      reported: new Map(),
      identities: new Map(),
    });
    expect(resolveForgetTarget(C, marked)).toEqual({ uuid: C, host: undefined });
  });

  it('unknown (never reported, or forgotten already): NODE_NOT_FOUND', () => {
    expect(() => resolveForgetTarget(C, facts())).toThrow(expect.objectContaining({ code: 'NODE_NOT_FOUND' }));
    expect(() => resolveForgetTarget('10.9.9.9', facts())).toThrow(expect.objectContaining({ code: 'NODE_NOT_FOUND' }));
  });

  it('a host several nodes reported: AMBIGUOUS_NODE, naming their UUIDs', () => {
    const f = facts(config(), { identities: new Map([[C, identity(C, '10.0.0.1')]]) });
    expect(() => resolveForgetTarget('10.0.0.1', f)).toThrow(
      expect.objectContaining({ code: 'AMBIGUOUS_NODE', description: expect.stringContaining(`${A}, ${C}`) }),
    );
  });
});

describe('what must happen before a node is forgotten', () => {
  const a = { uuid: A, host: '10.0.0.1' };

  it('a dead node that nothing names: nothing', () => {
    expect(forgetRefusals(a, facts())).toEqual([]);
    // A deleted dataset whose primary it was does not hold it.
    expect(forgetRefusals(a, facts(config([{ ...dataset(D1, A), deleted: true }])))).toEqual([]);
  });

  it('a node still reporting: stop its agents and wait the node timeout', () => {
    expect(forgetRefusals({ uuid: B, host: '10.0.0.2' }, facts())).toEqual([
      expect.stringMatching(/reporting .*stop its agents .*wait the node timeout \(30 s\)/),
    ]);
  });

  it('a node not heard of since a start less than a node timeout ago: wait', () => {
    const f = facts(config(), { reported: new Map(), pastStartTimeout: false });
    expect(forgetRefusals(a, f)).toEqual([expect.stringMatching(/started less than the node timeout/)]);
    expect(forgetRefusals(a, { ...f, pastStartTimeout: true })).toEqual([]);
  });

  it('a volume still attached to its instance (a live node reports it): wait for the detach', () => {
    expect(forgetRefusals(a, facts(config(), { attachedTo: (n) => (n === A ? [D2] : []) }))).toEqual([
      `The volume of dataset ${D2} is still attached to its compute instance: wait until the dataset's primary has detached it (its agent does, seeing this node dead), or detach it in the storage backend.`,
    ]);
  });

  it('the primary of a dataset, a lease holder (pinned), a container: each says what to do', () => {
    const c = config([dataset(D1, A), dataset(D2, B)], {
      leases: new Map([[D2, { dataset_id: D2, node_uuid: A, expires_at: null, pinned: true }]]),
      containers: new Map([['web', ContainerConfiguration.parse({ name: 'web', node_uuid: A, image: 'nginx' })]]),
    });
    const refusals = forgetRefusals(a, facts(c));
    expect(refusals).toEqual([
      `It is the primary of dataset ${D1}: move it to another node (flocker volumes move ${D1} <node>) or destroy it.`,
      `It holds the lease on dataset ${D2} (pinned): release it (flocker leases release ${D2}).`,
      'Container web is configured on it: move it to another node or delete it (flocker-deploy).',
    ]);
    expect(() => requireForgettable(a, facts(c))).toThrow(
      expect.objectContaining({
        code: 'NODE_IN_USE',
        description: expect.stringMatching(
          new RegExp(`^host 10\\.0\\.0\\.1 \\(node ${A}\\) may not be forgotten yet: `),
        ),
        errors: refusals,
      }),
    );
  });
});

describe('the configuration without the node', () => {
  it('out of the nodes and every accepted-loss marker (the key goes with its last node); the data-node marker stays', () => {
    const c = config([
      dataset(D1, B, { [METADATA_ACCEPTED_LOSS_FROM_KEY]: `${A},${C}`, [METADATA_DATA_NODE_KEY]: A }),
      dataset(D2, B, { [METADATA_ACCEPTED_LOSS_FROM_KEY]: A, name: 'v2' }),
      { ...dataset(D3, B, { [METADATA_ACCEPTED_LOSS_FROM_KEY]: A }), deleted: true },
    ]);
    const applied = forgetNodeInConfiguration(c, A);
    expect(applied.result).toEqual({ acceptedLossDatasets: [D1, D2, D3], dataNodeDatasets: [D1] });
    const next = applied.config;
    expect(next.version).toBe(8);
    expect([...next.nodes.keys()]).toEqual([B]);
    expect(next.datasets.get(D1)?.metadata).toEqual({
      [METADATA_ACCEPTED_LOSS_FROM_KEY]: C,
      [METADATA_DATA_NODE_KEY]: A,
    });
    expect(next.datasets.get(D2)?.metadata).toEqual({ name: 'v2' });
    expect(next.datasets.get(D3)?.metadata).toEqual({});
    // The input is not changed.
    expect(c.nodes.has(A)).toBe(true);
    expect(c.datasets.get(D2)?.metadata[METADATA_ACCEPTED_LOSS_FROM_KEY]).toBe(A);
  });

  it('again: the same configuration (nothing to commit)', () => {
    const once = forgetNodeInConfiguration(config([dataset(D1, B, { [METADATA_ACCEPTED_LOSS_FROM_KEY]: A })]), A);
    const twice = forgetNodeInConfiguration(once.config, A);
    expect(twice.config).toBe(once.config);
    expect(twice.result.acceptedLossDatasets).toEqual([]);
  });
});

describe('identities at load', () => {
  it('an identity whose node the configuration no longer has was forgotten (a stop before its removal): dropped', () => {
    const loaded = new Map([
      [A, identity(A, '10.0.0.1')],
      [C, identity(C, 'old-c')],
    ]);
    const { keep, dropped } = identitiesToKeep(loaded, config());
    expect([...keep.keys()]).toEqual([A]);
    expect(dropped).toEqual([C]);
  });
});
