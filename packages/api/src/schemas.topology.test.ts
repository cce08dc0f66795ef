/** The storage zone and free capacity a node reports (issue 19: CSI topology and GetCapacity). */
import { apiRoutes } from './contract';
import { NodeReport, NodeState, NodeStateSummary } from './schemas';

const NODE = '3f9a0c4e-1b2d-4c5e-8f70-9a1b2c3d4e5f';
const report = {
  uuid: NODE,
  era: 'e',
  host: 'h',
  instance_id: 'i',
  backend: 'loopback',
  manifestations: [],
};

describe('zone and available_bytes of a node report', () => {
  it('are optional: a report without them (an older agent) still parses, without them', () => {
    const r = NodeReport.parse(report);
    expect(r.zone).toBeUndefined();
    expect(r.available_bytes).toBeUndefined();
  });

  it('are kept as sent, in the report and in the node state built on it', () => {
    const r = NodeReport.parse({ ...report, zone: 'us-east-1a', available_bytes: 0 });
    expect(r).toMatchObject({ zone: 'us-east-1a', available_bytes: 0 });
    const s = NodeState.parse({ ...r, alive: true, last_seen: '2026-01-01T00:00:00Z' });
    expect(s).toMatchObject({ zone: 'us-east-1a', available_bytes: 0 });
  });

  it.each([
    ['an empty zone', { zone: '' }],
    ['a zone of 256 characters', { zone: 'z'.repeat(256) }],
    ['negative bytes', { available_bytes: -1 }],
    ['fractional bytes', { available_bytes: 1.5 }],
    ['bytes as a string', { available_bytes: '10' }],
  ])('%s is refused', (_name, extra) => {
    expect(NodeReport.safeParse({ ...report, ...extra }).success).toBe(false);
  });

  it('GET /v1/state/nodes answers them beside uuid and host (absent when not reported)', () => {
    const schema = apiRoutes.listNodes.responses[200].schema;
    expect(schema.parse([{ uuid: NODE, host: 'h' }])).toEqual([{ uuid: NODE, host: 'h' }]);
    const full = { uuid: NODE, host: 'h', zone: 'pool-1', available_bytes: 1024 };
    expect(schema.parse([full])).toEqual([full]);
    expect(NodeStateSummary.safeParse({ ...full, era: 'e' }).success).toBe(false); // strict, like NodeSummary
  });
});
