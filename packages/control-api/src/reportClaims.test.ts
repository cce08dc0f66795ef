/** reportClaimConflict looks up the nodes naming an instance: the same refusals as a scan of every node (issue 23). */
import type { NodeReport } from '@flocker/api';
import type { ReportedNode } from './clusterState';
import { ConfigurationError } from './errors';
import { claimsOf, reportClaimConflict, withRegistering } from './reportClaims';

/** The check as it was (a map of every other live node's instance, built per report): the reference. */
function byScan(report: NodeReport, nodes: readonly ReportedNode[], isLive: (n: ReportedNode) => boolean): string {
  const instances = new Map<string, string>();
  for (const node of nodes) {
    if (node.report.uuid === report.uuid || !isLive(node)) continue;
    instances.set(node.report.instance_id, node.report.uuid);
  }
  if (instances.has(report.instance_id)) return 'INSTANCE_CLAIMED';
  const attachedTo = new Map<string, string | null>();
  for (const v of report.volumes ?? []) attachedTo.set(v.blockdevice_id, v.attached_to);
  for (const m of report.manifestations) {
    const at = attachedTo.get(m.blockdevice_id);
    if (at !== undefined && at !== null && instances.has(at)) return 'VOLUME_CLAIMED';
  }
  return 'none';
}

/** A deterministic generator (mulberry32): the same clusters every run. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const uuid = (i: number): string => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;

function reportOf(i: number, pick: () => number): NodeReport {
  const instance = (): string => `i-${Math.floor(pick() * 6)}`;
  const volumes = Array.from({ length: Math.floor(pick() * 3) }, (_, k) => ({
    dataset_id: uuid(1000 + k),
    blockdevice_id: `b-${k}`,
    size: 1,
    attached_to: pick() < 0.3 ? null : instance(),
  }));
  return {
    uuid: uuid(Math.floor(pick() * 8)),
    era: `e-${i}`,
    host: '10.0.0.1',
    instance_id: instance(),
    backend: 'loopback',
    manifestations: volumes
      .filter(() => pick() < 0.7)
      .map((v) => ({
        dataset_id: v.dataset_id,
        blockdevice_id: v.blockdevice_id,
        size: 1,
        status: 'mounted' as const,
      })),
    volumes,
    errors: [],
  };
}

describe('reportClaimConflict', () => {
  it('refuses what a scan of every live node refuses, and nothing else (2,000 random clusters)', () => {
    const pick = random(23);
    const seen = new Set<string>();
    for (let c = 0; c < 2000; c++) {
      const nodes: ReportedNode[] = Array.from({ length: Math.floor(pick() * 8) }, (_, i) => ({
        report: reportOf(i, pick),
        lastSeen: pick() < 0.7 ? 1 : 0,
      }));
      const isLive = (n: ReportedNode): boolean => n.lastSeen === 1;
      const report = reportOf(99, pick);
      const got = reportClaimConflict(report, claimsOf(nodes), isLive);
      const want = byScan(report, nodes, isLive);
      expect(got === undefined ? 'none' : got.code).toBe(want);
      if (got !== undefined) expect(got).toBeInstanceOf(ConfigurationError);
      seen.add(want);
    }
    // Every outcome was met.
    expect([...seen].sort()).toEqual(['INSTANCE_CLAIMED', 'VOLUME_CLAIMED', 'none']);
  });

  it('decides over recorded and registering reports as over all of them recorded (2,000 random clusters)', () => {
    const pick = random(24);
    for (let c = 0; c < 2000; c++) {
      const nodes: ReportedNode[] = Array.from({ length: Math.floor(pick() * 8) }, (_, i) => ({
        report: reportOf(i, pick),
        lastSeen: pick() < 0.7 ? 1 : 0,
      }));
      const registering = new Set(nodes.filter(() => pick() < 0.4));
      const recorded = claimsOf(nodes.filter((n) => !registering.has(n)));
      const isLive = (n: ReportedNode): boolean => n.lastSeen === 1;
      const report = reportOf(99, pick);
      const got = reportClaimConflict(report, (i) => withRegistering(recorded(i), registering, i), isLive);
      expect(got?.code).toBe(reportClaimConflict(report, claimsOf(nodes), isLive)?.code);
    }
  });
});
