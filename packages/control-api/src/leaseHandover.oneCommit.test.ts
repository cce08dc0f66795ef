/**
 * Session 22 (issue 23): the requester of a lease hand-over is granted in the holder's release's own commit (file store;
 * two etcd replicas: etcd/leaseHandover.oneCommit.etcd.test). The store records, per commit, whose lease the dataset
 * has and its primary: no commit shows the volume between the release and the grant (with the Docker plugin's move
 * waiting too, the agents hear release, grant and move in one push). A requester gone before the release is granted
 * nothing; of several requesters the first asker is granted and the others refused, in that same commit.
 */
import { releaseVersion } from '@flocker/metrics';
import { recordedFileServices } from './testing/commitRecorder';
import { eventually, HOLDER, holderAnswers, idleVolume, leaseBecomes, REQUESTER, timed } from './testing/handover';
import { nodeReport } from './testing/httpService';

jest.setTimeout(60_000);

/** The file store, recording each commit's lease holder and primary of `watched` (set once the dataset exists). */
const start = recordedFileServices('flocker-handover-one-');

const THIRD = 'cccccccc-cccc-4ccc-8ccc-cccccccccccc';

describe('lease hand-over: the grant in the release commit (file store)', () => {
  it("the Docker plugin's lease POST and move: granted and moved in the release's commit", async () => {
    const { svc, client, store } = await start();
    const id = await idleVolume(client, 'idle');
    store.watched = id;
    const lease = timed(
      client.acquireLease({
        dataset_id: id,
        node_uuid: REQUESTER,
        expires: null,
        holder: 'docker',
        release_on_request: true,
      }),
    );
    const move = timed(client.updateDataset(id, { primary: REQUESTER }));
    await leaseBecomes(client, id, (l) => l?.release_requested !== undefined);
    await eventually(() => svc.state.configurationListenerCount === 2);
    const from = store.seen.length;
    await holderAnswers(client, id, 'release');
    const [l, m] = await Promise.all([lease, move]);
    expect(l.error).toBeUndefined();
    expect(l.value?.node_uuid).toBe(REQUESTER);
    expect(m.error).toBeUndefined();
    expect(m.value?.primary).toBe(REQUESTER);
    // From the holder's lease (request recorded) straight to the requester's, moved: one commit.
    expect(store.seen.slice(from)).toEqual([{ lease: REQUESTER, primary: REQUESTER }]);
    expect(svc.state.configurationListenerCount).toBe(0);
    expect(svc.state.latestListenerCount).toBe(0);
  });

  it('a requester gone before the release is granted nothing: the release commits alone', async () => {
    const { svc, client, store } = await start();
    const id = await idleVolume(client, 'gone');
    store.watched = id;
    const abort = new AbortController();
    const cut = fetch(`${svc.url}/v1/configuration/leases`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ dataset_id: id, node_uuid: REQUESTER, expires: null }),
      signal: abort.signal,
    }).catch(() => undefined);
    await leaseBecomes(client, id, (l) => l?.release_requested !== undefined);
    abort.abort();
    await cut;
    await eventually(() => svc.state.configurationListenerCount === 0 && svc.state.latestListenerCount === 0);
    const from = store.seen.length;
    await holderAnswers(client, id, 'release');
    await leaseBecomes(client, id, (l) => l === undefined);
    expect(store.seen.slice(from)).toEqual([{ lease: undefined, primary: HOLDER }]);
  });

  it('several requesters: the first asker is granted in the release commit, the other refused', async () => {
    const { svc, client, store } = await start();
    const id = await idleVolume(client, 'several');
    await client.reportNodeState(nodeReport(THIRD, { version: releaseVersion() }));
    store.watched = id;
    const first = timed(client.acquireLease({ dataset_id: id, node_uuid: REQUESTER, expires: null }));
    await leaseBecomes(client, id, (l) => l?.release_requested?.by === REQUESTER);
    const second = timed(client.acquireLease({ dataset_id: id, node_uuid: THIRD, expires: null }));
    // Both wait (the second on the first asker's request, pending already: nothing written for it).
    await eventually(() => svc.state.configurationListenerCount === 2);
    const before = store.seen.length;
    await holderAnswers(client, id, 'release');
    const [a, b] = await Promise.all([first, second]);
    expect(a.value?.node_uuid).toBe(REQUESTER);
    expect({ status: b.error?.status, code: b.error?.code }).toEqual({ status: 409, code: 'LEASE_HELD' });
    expect(store.seen.slice(before)).toEqual([{ lease: REQUESTER, primary: HOLDER }]);
  });

  it('a decline is answered as before: the lease stays, nothing granted', async () => {
    const { client, store } = await start();
    const id = await idleVolume(client, 'declined');
    store.watched = id;
    const asked = timed(client.acquireLease({ dataset_id: id, node_uuid: REQUESTER, expires: null }));
    const from = store.seen.length;
    await holderAnswers(client, id, 'decline');
    const { error } = await asked;
    expect(error?.code).toBe('LEASE_HELD');
    expect(store.seen.slice(from).every((s) => s.lease === HOLDER)).toBe(true);
  });
});
