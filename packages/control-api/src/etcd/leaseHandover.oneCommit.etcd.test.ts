/**
 * Session 22 (issue 23): on etcd, the requester of a lease hand-over waiting on the replica the holder releases through
 * is granted in the release's own commit (as on the file store: leaseHandover.oneCommit.test); waiting on another
 * replica, it wakes on the release adopted from etcd and is granted in a commit of its own, as before.
 */
import { randomUUID } from 'node:crypto';
import { recordedEtcdReplica } from '../testing/commitRecorder';
import { etcdReplicas } from '../testing/etcdReplicas';
import { eventually, HOLDER, holderAnswers, idleVolume, leaseBecomes, REQUESTER, timed } from '../testing/handover';

jest.setTimeout(90_000);

const bed = etcdReplicas('each');

/** A replica recording, per commit, whose lease and which primary the watched dataset has (`store`). */
const replica = (prefix: string) => recordedEtcdReplica(bed, prefix);

describe('lease hand-over on etcd: the grant in the release commit', () => {
  it('requester and holder on one replica: granted and moved in the release commit', async () => {
    const one = await replica(`/t-${randomUUID()}`);
    const id = await idleVolume(one.client, 'one');
    one.store.watched = id;
    const lease = timed(
      one.client.acquireLease({ dataset_id: id, node_uuid: REQUESTER, expires: null, holder: 'docker' }),
    );
    const move = timed(one.client.updateDataset(id, { primary: REQUESTER }));
    await leaseBecomes(one.client, id, (l) => l?.release_requested !== undefined);
    await eventually(() => one.svc.state.configurationListenerCount === 2);
    const from = one.store.seen.length;
    await holderAnswers(one.client, id, 'release');
    const [l, m] = await Promise.all([lease, move]);
    expect(l.value?.node_uuid).toBe(REQUESTER);
    expect(m.value?.primary).toBe(REQUESTER);
    expect(one.store.seen.slice(from)).toEqual([{ lease: REQUESTER, primary: REQUESTER }]);
  });

  it('the holder releasing through another replica: granted after the adopted release, in a commit of its own', async () => {
    const prefix = `/t-${randomUUID()}`;
    const asker = await replica(prefix);
    const holder = await replica(prefix);
    const id = await idleVolume(holder.client, 'two');
    await leaseBecomes(asker.client, id, (l) => l?.release_on_request === true);
    asker.store.watched = id;
    holder.store.watched = id;
    const lease = timed(asker.client.acquireLease({ dataset_id: id, node_uuid: REQUESTER, expires: null }));
    await leaseBecomes(holder.client, id, (l) => l?.release_requested !== undefined);
    const [fromAsker, fromHolder] = [asker.store.seen.length, holder.store.seen.length];
    await holderAnswers(holder.client, id, 'release');
    const { value, error } = await lease;
    expect(error).toBeUndefined();
    expect(value?.node_uuid).toBe(REQUESTER);
    expect(holder.store.seen.slice(fromHolder)).toEqual([{ lease: undefined, primary: HOLDER }]);
    expect(asker.store.seen.slice(fromAsker)).toEqual([{ lease: REQUESTER, primary: HOLDER }]);
  });
});
