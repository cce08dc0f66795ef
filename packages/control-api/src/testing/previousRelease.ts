/**
 * What a node one release behind parses (releases.ts, Views.newMembersHidden), and a control state whose gate stands at
 * THIS_RELEASE, for tests of the views' members new in this release.
 */
import { ClusterDelta, ClusterSnapshot, type Identity, Lease, ManifestationState, NodeState } from '@flocker/api';
import { MemoryConfigurationStore } from '../ConfigurationStore';
import { ControlState } from '../ControlState';
import { routes } from '../routes';
import { Views } from '../Views';
import { silentLogger } from './httpService';

/** The release whose nodes parse the new members (the gate), and one before it. */
export const THIS_RELEASE = '1.21.0';
export const PREVIOUS_RELEASE = '1.20.3';

/**
 * The previous release's strict schemas, strict as its agents and plugins read the agent channel's views: its Lease had
 * neither hand-over member (842e2d9), its manifestations no grow_pending (dc50004); nothing else of these schemas
 * changed since (`git diff 842e2d9~1 -- packages/api/src/schemas.ts packages/api/src/clusterDelta.ts` shows only
 * these members).
 */
export const PreviousLease = Lease.omit({ release_on_request: true, release_requested: true }).strict();
export const PreviousManifestation = ManifestationState.omit({ grow_pending: true }).strict();
export const PreviousNodeState = NodeState.extend({ manifestations: PreviousManifestation.array() }).strict();
export const PreviousSnapshot = ClusterSnapshot.extend({
  leases: PreviousLease.array(),
  nodes: PreviousNodeState.array(),
}).strict();
export const PreviousDelta = ClusterDelta.extend({
  leases: PreviousLease.array(),
  nodes: PreviousNodeState.array(),
}).strict();

/** A control state in memory at `now` whose gate stands at THIS_RELEASE, and its views (as the server keeps them). */
export async function gatedState(now: () => number): Promise<{ state: ControlState; views: Views }> {
  const state = await ControlState.open({
    store: new MemoryConfigurationStore(),
    nodeTimeoutMs: 10_000,
    logger: silentLogger,
    now,
    livenessCheckMs: 60_000,
    newMembersSince: THIS_RELEASE,
  });
  return { state, views: new Views(state, true) };
}

/** A GET route's JSON answer, as `identity` (undefined: plain HTTP) asks it. */
export async function getRoute(
  state: ControlState,
  views: Views,
  path: string,
  query: Record<string, string>,
  identity?: Identity,
): Promise<unknown> {
  const route = routes.find((r) => r.method === 'get' && r.path === path);
  if (route === undefined) throw new Error(`no route ${path}`);
  const reply = await route.handle(
    state,
    { params: {}, query, body: undefined, ifMatches: undefined, signal: new AbortController().signal, identity },
    views,
  );
  return JSON.parse(String(reply.json)) as unknown;
}
