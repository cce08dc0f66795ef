/**
 * The liveness-only report (review T1 S0, FR F4): what the agent sends from its start until its first full look at the
 * storage backend has finished (a restart while a cloud API hangs can take that long). It says only "this node is
 * alive": its lists are empty and mean nothing (backend_unseen), and the control service keeps the node's previous
 * state. Without it the node would be silent until the look ends, and declared dead at the node timeout.
 */
import { FlockerApiError, type NodeReport } from '@flocker/api';

/** The liveness-only report of the node `full` describes (built from an empty view: only its identity, zone,
 * largest volume size and fence are used); `statesFencing` false: without the fencing_stated marker. */
export function livenessReport(full: NodeReport, since: string, statesFencing = true): NodeReport {
  return {
    uuid: full.uuid,
    era: full.era,
    host: full.host,
    instance_id: full.instance_id,
    backend: full.backend,
    manifestations: [],
    errors: [],
    ...(full.version !== undefined ? { version: full.version } : {}),
    // Known before any look (agent.yml, the driver's settings): without them the node is listed zone-less (FR19-9).
    ...(full.zone !== undefined ? { zone: full.zone } : {}),
    ...(full.max_volume_size !== undefined ? { max_volume_size: full.max_volume_size } : {}),
    // Its fence is its own state, not the backend's: the control service shows it in place of the held report's (W7).
    ...(full.fencing !== undefined ? { fencing: full.fencing } : {}),
    backend_unseen: {
      since,
      reason: `listing volumes of ${full.backend}: no answer yet`,
      // Says that no fencing above means none (review s27 F12): the control service keeps the held fence for reports
      // without it (agents before it never stated theirs). Left out for a control service that refuses it.
      ...(statesFencing ? { fencing_stated: true as const } : {}),
    },
  };
}

/** `report` without backend_unseen.fencing_stated: what a control service before that member accepts. */
export function withoutFencingStated(report: NodeReport): NodeReport {
  if (report.backend_unseen === undefined) return report;
  const { fencing_stated: _stated, ...unseen } = report.backend_unseen;
  return { ...report, backend_unseen: unseen };
}

/**
 * Whether a liveness report's failure says the control service does not take them: a 400 (a control service before
 * backend_unseen refuses the member, its report schema being strict). The agent then sends none for this run.
 */
export function refusesLiveness(e: unknown): boolean {
  return e instanceof FlockerApiError && e.status === 400;
}
