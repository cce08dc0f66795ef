/**
 * lenientSchema (review FR F12): a newer control service's additive members are dropped at every depth, while the
 * schema itself (requests) still refuses them, and nothing else about the schema changes.
 */
import { z } from 'zod';
import { ClusterAnswer, isClusterDelta } from './clusterDelta';
import { ContainerState, RestartPolicy } from './containers';
import { lenientSchema } from './lenientSchema';
import { CreateDatasetRequest, DatasetConfiguration, NodeState } from './schemas';

const D = '11111111-1111-4111-8111-111111111111';
const N = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';

const node = {
  uuid: N,
  era: 'e1',
  host: '10.0.0.1',
  instance_id: 'i-1',
  backend: 'loopback',
  manifestations: [{ dataset_id: D, blockdevice_id: 'b1', size: 1 << 30, status: 'mounted', path: '/flocker/d' }],
  alive: true,
  last_seen: '2026-12-06T08:00:00.000Z',
};

describe('lenientSchema', () => {
  it('drops an unknown member at the top and at depth, keeps the known ones', () => {
    const strict = z
      .object({
        a: z.string(),
        list: z.array(z.object({ b: z.number() }).strict()),
        map: z.record(z.string(), z.object({ c: z.boolean() }).strict()).optional(),
        inner: z.object({ d: z.string() }).strict().nullable(),
      })
      .strict();
    const input = {
      a: 'x',
      list: [{ b: 1, future_b: 2 }],
      map: { k: { c: true, future_c: 'y' } },
      inner: { d: 'z', future_d: [] },
      future_a: { anything: 1 },
    };
    expect(strict.safeParse(input).success).toBe(false);
    expect(lenientSchema(strict).parse(input)).toEqual({
      a: 'x',
      list: [{ b: 1 }],
      map: { k: { c: true } },
      inner: { d: 'z' },
    });
  });

  it('reads a ContainerState, a NodeState and a Dataset with unknown members; the schemas still refuse them', () => {
    const error = { code: 'IMAGE_NOT_FOUND', message: 'no such image', attempts: 1, since: '2026-12-06T08:00:00.000Z' };
    const error_ = { ...error, future_retry_ms: 2000 };
    const container = {
      name: 'web',
      node_uuid: N,
      image: 'nginx',
      running: false,
      error: error_,
      reported_at: '2026-12-06T08:00:00.000Z',
      future_age_ms: 1200,
    };
    expect(ContainerState.safeParse(container).success).toBe(false);
    expect(lenientSchema(ContainerState).parse(container)).toEqual({
      name: 'web',
      node_uuid: N,
      image: 'nginx',
      running: false,
      error,
      reported_at: '2026-12-06T08:00:00.000Z',
    });

    const newer = {
      ...node,
      future_report_member: { since: '2026-12-06T08:00:00.000Z' },
      manifestations: [{ ...node.manifestations[0], future_lineage: 'x' }],
    };
    expect(NodeState.safeParse(newer).success).toBe(false);
    expect(lenientSchema(NodeState).parse(newer)).toEqual(NodeState.parse(node));

    const dataset = { dataset_id: D, primary: N, metadata: { name: 'v' }, deleted: false, maximum_size: 1 << 30 };
    expect(lenientSchema(DatasetConfiguration).parse({ ...dataset, future_tier: 'gold' })).toEqual(
      DatasetConfiguration.parse(dataset),
    );
    expect(DatasetConfiguration.safeParse({ ...dataset, future_tier: 'gold' }).success).toBe(false);
    // A request stays strict: the schema itself is not changed by deriving its lenient copy.
    lenientSchema(CreateDatasetRequest);
    expect(CreateDatasetRequest.safeParse({ primary: N, maximum_size: 1 << 30, future_tier: 'gold' }).success).toBe(
      false,
    );
  });

  it('keeps a union’s options apart: a delta stays a delta, a snapshot a snapshot, each with a new member', () => {
    const snapshot = { generation: 'g2', configuration_tag: 'v1', datasets: [], leases: [], nodes: [node] };
    const delta = {
      delta: true,
      since: 'g1',
      generation: 'g2',
      configuration_tag: 'v1',
      datasets: [],
      removed_datasets: [D],
      leases: [],
      removed_leases: [],
      nodes: [{ ...node, future_condition: 'new' }],
      removed_nodes: [],
      future_member: 1,
    };
    const lenient = lenientSchema(ClusterAnswer);
    const d = lenient.parse(delta);
    expect(isClusterDelta(d)).toBe(true);
    expect(d).toMatchObject({ since: 'g1', removed_datasets: [D] });
    const s = lenient.parse({ ...snapshot, future_member: 1 });
    expect(isClusterDelta(s)).toBe(false);
    expect(s).toEqual(ClusterAnswer.parse(snapshot));
    // Strict as before.
    expect(ClusterAnswer.safeParse(delta).success).toBe(false);
  });

  it('keeps refinements, defaults (a fresh value each parse) and discriminated unions', () => {
    const refined = z
      .object({ lo: z.number(), hi: z.number(), list: z.array(z.string()).default([]) })
      .strict()
      .refine((v) => v.lo <= v.hi, { message: 'lo above hi' });
    const lenient = lenientSchema(refined);
    expect(lenient.safeParse({ lo: 2, hi: 1, extra: 0 }).success).toBe(false);
    const a = lenient.parse({ lo: 1, hi: 2, extra: 0 });
    const b = lenient.parse({ lo: 1, hi: 2 });
    expect(a).toEqual({ lo: 1, hi: 2, list: [] });
    expect(a.list).not.toBe(b.list);
    expect(lenientSchema(RestartPolicy).parse({ name: 'on-failure', maximum_retry_count: 3, extra: 1 })).toEqual(
      RestartPolicy.parse({ name: 'on-failure', maximum_retry_count: 3 }),
    );
    expect(lenientSchema(RestartPolicy).safeParse({ name: 'sometimes' }).success).toBe(false);
  });

  it('copies a recursive schema (a shape that names itself through a getter)', () => {
    const Tree = z
      .object({
        name: z.string(),
        get children(): z.ZodOptional<z.ZodArray<typeof Tree>> {
          return z.array(Tree).optional();
        },
      })
      .strict();
    const input = { name: 'a', future: 1, children: [{ name: 'b', future: 2, children: [{ name: 'c', future: 3 }] }] };
    expect(Tree.safeParse(input).success).toBe(false);
    expect(lenientSchema(Tree).parse(input)).toEqual({
      name: 'a',
      children: [{ name: 'b', children: [{ name: 'c' }] }],
    });
  });

  it('is derived once per schema; a schema without strict objects is its own lenient copy', () => {
    expect(lenientSchema(NodeState)).toBe(lenientSchema(NodeState));
    const plain = z.array(z.string());
    expect(lenientSchema(plain)).toBe(plain);
  });
});
