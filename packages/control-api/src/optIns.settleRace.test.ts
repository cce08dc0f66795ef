/**
 * Review RV finding 6: a report's settle (loss opt-ins, data-node markers, accepted-loss names) is computed on the
 * committed configuration, then applied in a mutate onto the latest one. Changes waiting for their commit sit in
 * between: a move B→C and one back C→B with accept-replica-loss leave the primary B again, and the opt-in just given
 * for the move back was removed by a report of B's old era (the move back was then refused and asked again). The
 * settle now applies only to datasets whose entry is still the one it was computed on; the next report settles the
 * rest.
 *
 * Through the route's handler with a stand-in state: `configuration` is what is committed, `mutate` applies the
 * change onto what is pending (the moves away and back).
 */
import {
  type DatasetConfiguration,
  METADATA_ACCEPT_REPLICA_LOSS_KEY as REPLICA_LOSS,
  type NodeReport,
} from '@flocker/api';
import type { Applied, Configuration } from './configuration';
import type { ControlState } from './ControlState';
import { routes } from './routes';
import type { CheckedContext } from './routeSpec';
import { B, configOf, D1, mountedReport } from './testing/fixtures';
import type { Views } from './Views';

const ds = (primary: string, extra: Record<string, string> = {}): DatasetConfiguration => ({
  dataset_id: D1,
  primary,
  metadata: { name: 'db', ...extra },
  deleted: false,
});

/** The handler of PUT /v1/agent/nodes/:uuid (a node's report), run with `committed` and `pending`. */
async function reportWith(
  committed: Configuration,
  pending: Configuration,
  report: NodeReport,
): Promise<Configuration> {
  let after = pending;
  const state = {
    configuration: committed,
    configurationTag: `v${committed.version}`,
    nodeTimeoutMs: 30_000,
    leaseGraceMs: 30_000,
    now: () => 0,
    nodesClaimingInstance: () => [],
    reportedNode: (uuid: string) => (uuid === report.uuid ? { report, lastSeen: 0 } : undefined),
    report: () => Promise.resolve('g1'),
    nodeViews: { holdersOf: (id: string) => (id === D1 ? new Set([B]) : undefined) },
    mutate: <T>(change: (c: Configuration, now: number) => Applied<T>): Promise<Applied<T>> => {
      const applied = change(pending, 0);
      after = applied.config;
      return Promise.resolve(applied);
    },
  };
  // The dataset state as the committed era shows it: mounted on B (the report is current for that era).
  const views = {
    datasetStatesLearnt: () => Promise.resolve(),
    datasetStateOf: (id: string) => JSON.stringify([{ dataset_id: id, primary: B, path: `/mnt/${id}` }]),
  };
  const route = routes.find((r) => r.method === 'put' && r.path === '/v1/agent/nodes/:uuid');
  if (route === undefined) throw new Error('no report route');
  const ctx: CheckedContext = {
    params: { uuid: report.uuid },
    query: {},
    body: report,
    ifMatches: undefined,
    signal: new AbortController().signal,
  };
  await route.handle(state as unknown as ControlState, ctx, views as unknown as Views);
  return after;
}

describe('a report settles only the entries it was computed on (RV finding 6)', () => {
  const committed = { ...configOf(ds(B, { [REPLICA_LOSS]: 'true' })), version: 10 };

  it('nothing pending: the opt-in of the completed move goes', async () => {
    const after = await reportWith(committed, committed, mountedReport(B, [D1]));
    expect(after.datasets.get(D1)?.metadata[REPLICA_LOSS]).toBeUndefined();
  });

  it('B→C→B waiting for its commit: the opt-in given for the move back stays', async () => {
    // The same values as committed (primary B, the opt-in 'true'), but a later entry: two moves since.
    const pending = { ...configOf(ds(B, { [REPLICA_LOSS]: 'true' })), version: 12 };
    const after = await reportWith(committed, pending, mountedReport(B, [D1]));
    expect(after.datasets.get(D1)?.metadata[REPLICA_LOSS]).toBe('true');
  });
});
