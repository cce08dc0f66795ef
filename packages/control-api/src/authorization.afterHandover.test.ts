/**
 * Authorization after a lease hand-over's wait (session 21): the request was authorized on the configuration before
 * the wait and is applied on the one after, seconds later. A rule that reads the lease (authorization.ts: a node may
 * not unpin a pinned lease; may delete only without another node's lease) can decide otherwise then, so the server
 * authorizes the request again, on the configuration its second application sees (in the same turn).
 */
import type { Identity } from '@flocker/api';
import { releaseVersion } from '@flocker/metrics';
import { acquireLease, createDataset, releaseLease } from './configuration';
import { ControlState } from './ControlState';
import { MemoryConfigurationStore } from './ConfigurationStore';
import { routes } from './routes';
import { A, B, letterReport as report } from './testing/fixtures';
import { silentLogger } from './testing/httpService';
import { requireAuthorized } from './tls';
import { Views } from './Views';

const D = '00000000-1111-4111-8111-111111111111';
let state: ControlState;

beforeEach(async () => {
  state = await ControlState.open({
    store: new MemoryConfigurationStore(),
    nodeTimeoutMs: 60_000,
    logger: silentLogger,
    livenessCheckMs: 60_000,
    handoverWaitMs: 20_000,
  });
  // Agents of this release: the holder's plugin is served the hand-over's members, so it is asked (review R1 F1).
  await state.report(report(A, { version: releaseVersion() }));
  await state.report(report(B, { version: releaseVersion() }));
  await state.mutate((c) => createDataset(c, { primary: A, dataset_id: D, metadata: { name: 'v' } }));
  await state.mutate((c, at) =>
    acquireLease(c, { dataset_id: D, node_uuid: A, expires: null, holder: 'docker', release_on_request: true }, at),
  );
});
afterEach(() => state.close());

async function until(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('not in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

it('a node’s lease POST with pinned: false is authorized again after the wait: refused if its lease is pinned by then', async () => {
  const route = routes.find((r) => r.method === 'post' && r.path === '/v1/configuration/leases');
  if (route === undefined) throw new Error('no route');
  const identity: Identity = { kind: 'node', uuid: B };
  const body = { dataset_id: D, node_uuid: B, expires: null, pinned: false };
  const request = { method: 'post', route: route.path, params: {}, body };
  // Allowed now (A's lease is not pinned), as the server checks it before the handler.
  requireAuthorized(state, identity, request);
  const answer = Promise.resolve(
    route.handle(
      state,
      {
        params: {},
        query: {},
        body,
        ifMatches: undefined,
        signal: new AbortController().signal,
        identity,
        reauthorize: () => requireAuthorized(state, identity, request),
      },
      new Views(state),
    ),
  ).then(
    (reply) => ({ reply, error: undefined }),
    (error: unknown) => ({ reply: undefined, error }),
  );
  await until(() => state.configuration.leases.get(D)?.release_requested !== undefined);
  // In one turn: A lets go, and an administrator takes B's lease pinned (both land before B's request is applied).
  void state.mutate((c, at) => releaseLease(c, D, at, 'docker'));
  void state.mutate((c, at) => acquireLease(c, { dataset_id: D, node_uuid: B, expires: null, pinned: true }, at));
  const { reply, error } = await answer;
  expect(reply).toBeUndefined();
  expect(error).toMatchObject({ code: 'FORBIDDEN' });
  expect(String((error as Error).message)).toMatch(/may not unpin the lease/);
  await until(() => state.configuration.leases.get(D)?.node_uuid === B);
  expect(state.configuration.leases.get(D)?.pinned).toBe(true);
});
