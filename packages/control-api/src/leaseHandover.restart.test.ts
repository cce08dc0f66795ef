/**
 * Right after a control-service restart, a lease a node's Docker plugin keeps idle (release_on_request) is held by a
 * node that has not reported since this start: with certificates the views served to it leave out the hand-over's
 * members (Views.newMembersHidden: no report, no release), so its plugin cannot hear a request yet. Another node's
 * lease POST (the `docker run` there) waits, within the hand-over wait, for the holder to report, then gets the
 * hand-over; past that wait it is refused saying so (not "used there by docker", not "is the plugin running?"). A
 * holder that reports an older release is one that cannot hear: refused at once, as before (review R1 F1).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { releaseVersion } from '@flocker/metrics';
import { acquireLease, createDataset, releaseLease } from './configuration';
import { FileConfigurationStore } from './ConfigurationStore';
import { ControlState } from './ControlState';
import { routes } from './routes';
import { UNREPORTED_RETRY_AFTER_S } from './leaseHandover';
import { HOLDER, REQUESTER } from './testing/handover';
import { nodeReport, silentLogger } from './testing/httpService';
import { Views } from './Views';

jest.setTimeout(60_000);

const ID = '00000000-1111-4111-8111-111111111111';
const dirs: string[] = [];
const states: ControlState[] = [];

afterEach(async () => {
  await Promise.all(states.splice(0).map((s) => s.close()));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function open(dir: string, handoverWaitMs: number): Promise<ControlState> {
  return ControlState.open({
    store: new FileConfigurationStore(dir),
    nodeTimeoutMs: 60_000,
    logger: silentLogger,
    livenessCheckMs: 60_000,
    handoverWaitMs,
  }).then((s) => {
    states.push(s);
    return s;
  });
}

/** The holder's idle lease recorded by a first run of the service; a second run (the restart) opened on it. */
async function restarted(handoverWaitMs: number): Promise<ControlState> {
  const dir = mkdtempSync(path.join(tmpdir(), 'flocker-handover-restart-'));
  dirs.push(dir);
  const first = await open(dir, handoverWaitMs);
  await first.report(nodeReport(HOLDER, { version: releaseVersion() }));
  await first.report(nodeReport(REQUESTER, { version: releaseVersion() }));
  await first.mutate((c) => createDataset(c, { primary: HOLDER, dataset_id: ID, metadata: { name: 'idle' } }));
  await first.mutate((c, at) =>
    acquireLease(
      c,
      { dataset_id: ID, node_uuid: HOLDER, expires: null, holder: 'docker', release_on_request: true },
      at,
    ),
  );
  await first.close();
  states.splice(states.indexOf(first), 1);
  const state = await open(dir, handoverWaitMs);
  // The requester's agent reports at once; the holder's has not yet.
  await state.report(nodeReport(REQUESTER, { version: releaseVersion() }));
  return state;
}

/** The requester's plugin's lease POST (its `docker run`), as the server calls the route under TLS. */
async function requesterTakes(
  state: ControlState,
): Promise<{ status?: number; code?: string; message?: string; retryAfterS?: number; ms: number }> {
  const route = routes.find((r) => r.method === 'post' && r.path === '/v1/configuration/leases');
  if (route === undefined) throw new Error('no route');
  const t0 = Date.now();
  try {
    const reply = await route.handle(
      state,
      {
        params: {},
        query: {},
        body: { dataset_id: ID, node_uuid: REQUESTER, expires: null, holder: 'docker', release_on_request: true },
        ifMatches: undefined,
        signal: new AbortController().signal,
        identity: { kind: 'node', uuid: REQUESTER },
        reauthorize: undefined,
      },
      new Views(state),
    );
    return { status: reply.status, ms: Date.now() - t0 };
  } catch (err) {
    const e = err as { code?: string; message?: string; retryAfterS?: number };
    return { code: e.code, message: e.message, retryAfterS: e.retryAfterS, ms: Date.now() - t0 };
  }
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not in time: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('lease hand-over right after a control-service restart', () => {
  it('waits for the holder to report, then asks it: granted once it lets go', async () => {
    const state = await restarted(5_000);
    const asked = requesterTakes(state);
    // Not refused at once: still pending after a moment, nothing asked of a holder that cannot hear yet.
    await new Promise((r) => setTimeout(r, 200));
    expect(state.configuration.leases.get(ID)?.release_requested).toBeUndefined();
    // The holder's agent reports (this release): its plugin hears now, and is asked.
    await state.report(nodeReport(HOLDER, { version: releaseVersion() }));
    await until(() => state.configuration.leases.get(ID)?.release_requested !== undefined, 'request recorded');
    expect(state.configuration.leases.get(ID)?.release_requested?.by).toBe(REQUESTER);
    await state.mutate((c, at) => releaseLease(c, ID, at, 'docker'));
    const answer = await asked;
    expect(answer).toMatchObject({ status: 201 });
    expect(state.configuration.leases.get(ID)?.node_uuid).toBe(REQUESTER);
    expect(state.configurationListenerCount).toBe(0);
  });

  it('granted at once when the holder lets go of the lease meanwhile (its plugin sees it unheard)', async () => {
    const state = await restarted(5_000);
    const asked = requesterTakes(state);
    await new Promise((r) => setTimeout(r, 100));
    await state.mutate((c, at) => releaseLease(c, ID, at, 'docker'));
    const answer = await asked;
    expect(answer).toMatchObject({ status: 201 });
    expect(answer.ms).toBeLessThan(3_000);
  });

  it('past the wait: refused saying the holder has not reported since the restart, and to retry', async () => {
    const state = await restarted(600);
    const answer = await requesterTakes(state);
    expect(answer.code).toBe('LEASE_HELD');
    expect(answer.ms).toBeGreaterThanOrEqual(550);
    expect(answer.message).toMatch(/has not reported since the control service (re)?started/);
    expect(answer.message).toMatch(/[Rr]etry once that node reports again/);
    // Not promised to work soon: the holder's host may be down (review s28 G4).
    expect(answer.message).not.toMatch(/in a few seconds/);
    expect(answer.message).toMatch(/if its host is down, the control service declares it dead/);
    // The time actually waited.
    const waited = Number(/waited (\d+(?:\.\d+)?) s/.exec(answer.message ?? '')?.[1]) * 1000;
    expect(waited).toBeGreaterThanOrEqual(550);
    expect(waited).toBeLessThanOrEqual(answer.ms);
    expect(answer.message).toMatch(/10\.0\.0\.1/);
    // An idle kept lease does not read as in use.
    expect(answer.message).not.toMatch(/used there by/);
    expect(answer.message).not.toMatch(/is the Docker plugin .* running/);
    expect(state.configuration.leases.get(ID)?.release_requested).toBeUndefined();
    // Marked retryable (answered with a Retry-After): the Docker plugin asks again within its Mount's deadline
    // (review s28 G5); the code stays LEASE_HELD for older clients.
    expect(answer.retryAfterS).toBe(UNREPORTED_RETRY_AFTER_S);
  });

  it("woken at the wait's end a little before its deadline (a timer counts whole ms): its end, logged as such", async () => {
    // A CI run logged outcome 'ended' at wait_ms 4999 of a 5,000-ms wait: the wake-up read as the store lost, and the
    // request was applied once more before the same refusal.
    const state = await restarted(600);
    jest
      .spyOn(state, 'waitForChange')
      .mockImplementation((_since, timeoutMs) => new Promise((r) => setTimeout(r, Math.max(0, timeoutMs - 3))));
    const mutate = jest.spyOn(state, 'mutate');
    const info = jest.spyOn(state.logger, 'info');
    const answer = await requesterTakes(state);
    expect(answer.code).toBe('LEASE_HELD');
    expect(answer.retryAfterS).toBe(UNREPORTED_RETRY_AFTER_S);
    const calls = info.mock.calls as unknown as Array<[string, { outcome?: string } | undefined]>;
    const ended = calls.filter(([m]) => m === 'lease hand-over: the wait for the holder to report ended');
    expect(ended.map(([, meta]) => meta?.outcome)).toEqual(['timeout']);
    expect(mutate).toHaveBeenCalledTimes(1);
  });

  it('the service closing ends the wait at once; the client going away too; nothing left listening', async () => {
    const state = await restarted(20_000);
    const gone = new AbortController();
    const route = routes.find((r) => r.method === 'post' && r.path === '/v1/configuration/leases');
    if (route === undefined) throw new Error('no route');
    const t0 = Date.now();
    const left = Promise.resolve(
      route.handle(
        state,
        {
          params: {},
          query: {},
          body: { dataset_id: ID, node_uuid: REQUESTER, expires: null, holder: 'docker', release_on_request: true },
          ifMatches: undefined,
          signal: gone.signal,
          identity: { kind: 'node', uuid: REQUESTER },
          reauthorize: undefined,
        },
        new Views(state),
      ),
    ).catch((err: unknown) => err);
    await new Promise((r) => setTimeout(r, 100));
    gone.abort();
    expect(await left).toMatchObject({ code: 'LEASE_HELD' });
    expect(Date.now() - t0).toBeLessThan(5_000);
    const asked = requesterTakes(state);
    await new Promise((r) => setTimeout(r, 100));
    const closing = Date.now();
    await state.close();
    states.splice(states.indexOf(state), 1);
    const answer = await asked;
    // Answered as the normal path answers a closing service (503: the clients ask another replica), not 409
    // LEASE_HELD blaming the holder, which the Docker plugin takes as final (review s28 G1).
    expect(answer.code).toBe('SHUTTING_DOWN');
    expect(Date.now() - closing).toBeLessThan(5_000);
    expect(state.configurationListenerCount).toBe(0);
  });

  it('the store stopping to answer this replica (long-polls released) ends the wait at once: 503 STORE_UNAVAILABLE', async () => {
    const state = await restarted(20_000);
    const asked = requesterTakes(state);
    await new Promise((r) => setTimeout(r, 100));
    state.storeReachable(false, 'test: the store does not answer');
    const answer = await asked;
    // As the normal path answers then: the clients re-send it to another replica at once (review s28 G1).
    expect(answer.code).toBe('STORE_UNAVAILABLE');
    expect(answer.message).not.toMatch(/has not reported/);
    expect(answer.ms).toBeLessThan(5_000);
    state.storeReachable(true);
  });

  it('one budget: the report wait and the hand-over wait together stay within the hand-over wait', async () => {
    const state = await restarted(3_000);
    const asked = requesterTakes(state);
    // The holder reports late in the wait and is asked, but its plugin never lets go: refused when the budget ends,
    // not a whole hand-over wait later (review s28 G2: 2 x --handover-wait could pass the clients' timeout).
    await new Promise((r) => setTimeout(r, 2_000));
    await state.report(nodeReport(HOLDER, { version: releaseVersion() }));
    const answer = await asked;
    expect(answer.code).toBe('LEASE_HELD');
    expect(answer.message).toMatch(/did not within (0\.\d+|1(\.\d+)?) s/);
    // Asked and silent: no retry helps soon, so not marked retryable.
    expect(answer.retryAfterS).toBeUndefined();
    expect(answer.ms).toBeGreaterThanOrEqual(2_900);
    expect(answer.ms).toBeLessThan(4_500);
    expect(state.configuration.leases.get(ID)?.release_requested?.by).toBe(REQUESTER);
  });

  it('a holder that reports an older release meanwhile cannot hear: refused then, without waiting on', async () => {
    const state = await restarted(5_000);
    const asked = requesterTakes(state);
    await new Promise((r) => setTimeout(r, 100));
    await state.report(nodeReport(HOLDER, { version: '0.0.9' }));
    const answer = await asked;
    expect(answer.code).toBe('LEASE_HELD');
    expect(answer.ms).toBeLessThan(3_000);
    expect(answer.message).not.toMatch(/did not within|has not reported/);
    // It will not be asked: not described as letting go when asked, but why and what to do (review s28 G4).
    expect(answer.message).not.toMatch(/lets go of it when asked/);
    expect(answer.message).toMatch(/cannot hear a release request: .*older release\. Upgrade it, or release the lease/);
    expect(answer.retryAfterS).toBeUndefined();
    expect(state.configuration.leases.get(ID)?.release_requested).toBeUndefined();
  });
});
