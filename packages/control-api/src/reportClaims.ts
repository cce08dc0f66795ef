/**
 * What a node report may claim, as a pure function of the report and the other nodes'
 * latest reports: no node may pass itself off as another live node's compute instance
 * (after it stopped reporting, that instance would look dead and its volumes would be
 * force-detached from the live node), nor claim as its own a volume its own backend
 * listing shows attached to another live node's instance.
 */
import type { NodeReport } from '@flocker/api';
import type { ReportedNode } from './clusterState';
import { ConfigurationError } from './errors';

/** The refusal for `report`, or undefined when it claims nothing another live node holds. */
export function reportClaimConflict(
  report: NodeReport,
  nodes: Iterable<ReportedNode>,
  isLive: (node: ReportedNode) => boolean,
): ConfigurationError | undefined {
  const instances = new Map<string, string>();
  for (const node of nodes) {
    if (node.report.uuid === report.uuid || !isLive(node)) continue;
    instances.set(node.report.instance_id, node.report.uuid);
  }
  const owner = instances.get(report.instance_id);
  if (owner !== undefined) {
    return new ConfigurationError(
      'INSTANCE_CLAIMED',
      `Node ${report.uuid} reports compute instance ${report.instance_id}, which live node ${owner} reports as its own: ` +
        'two nodes cannot be one instance (check the agent configuration of both hosts).',
    );
  }
  const attachedTo = new Map<string, string | null>();
  for (const v of report.volumes ?? []) attachedTo.set(v.blockdevice_id, v.attached_to);
  for (const m of report.manifestations) {
    const at = attachedTo.get(m.blockdevice_id);
    const holder = at === undefined || at === null ? undefined : instances.get(at);
    if (holder !== undefined) {
      return new ConfigurationError(
        'VOLUME_CLAIMED',
        `Node ${report.uuid} reports dataset ${m.dataset_id} (volume ${m.blockdevice_id}) as ${m.status} here, but its own backend listing ` +
          `shows the volume attached to instance ${at ?? ''}, which live node ${holder} reports as its own.`,
      );
    }
  }
  return undefined;
}
