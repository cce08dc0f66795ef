/**
 * Session 24 (issue 23): a lease taken with move_here on etcd, as on the file store (leaseMoveHere.routes.test): the
 * requester's one request is granted and moved in the holder's release commit when both go through one replica; the
 * holder releasing through another replica, the grant and the move are one commit of the asker's replica.
 */
import { randomUUID } from 'node:crypto';
import { recordedEtcdReplica } from '../testing/commitRecorder';
import { etcdReplicas } from '../testing/etcdReplicas';
import { eventually, HOLDER, holderAnswers, idleVolume, leaseBecomes, REQUESTER, timed } from '../testing/handover';

jest.setTimeout(90_000);

const bed = etcdReplicas('each');

const replica = (prefix: string) => recordedEtcdReplica(bed, prefix);

const pluginLease = (id: string) =>
  ({ dataset_id: id, node_uuid: REQUESTER, expires: null, holder: 'docker', move_here: true }) as const;

describe('a lease with move_here on etcd', () => {
  it('requester and holder on one replica: one request, granted and moved in the release commit', async () => {
    const one = await replica(`/t-${randomUUID()}`);
    const id = await idleVolume(one.client, 'one');
    one.store.watched = id;
    const lease = timed(one.client.acquireLease(pluginLease(id)));
    await leaseBecomes(one.client, id, (l) => l?.release_requested !== undefined);
    await eventually(() => one.svc.state.configurationListenerCount === 1);
    const from = one.store.seen.length;
    await holderAnswers(one.client, id, 'release');
    const { value, error } = await lease;
    expect(error).toBeUndefined();
    expect(value?.node_uuid).toBe(REQUESTER);
    expect(one.store.seen.slice(from)).toEqual([{ lease: REQUESTER, primary: REQUESTER }]);
  });

  it('the holder releasing through another replica: granted and moved in one commit of the asker', async () => {
    const prefix = `/t-${randomUUID()}`;
    const asker = await replica(prefix);
    const holder = await replica(prefix);
    const id = await idleVolume(holder.client, 'two');
    await leaseBecomes(asker.client, id, (l) => l?.release_on_request === true);
    asker.store.watched = id;
    holder.store.watched = id;
    const lease = timed(asker.client.acquireLease(pluginLease(id)));
    await leaseBecomes(holder.client, id, (l) => l?.release_requested !== undefined);
    const [fromAsker, fromHolder] = [asker.store.seen.length, holder.store.seen.length];
    await holderAnswers(holder.client, id, 'release');
    const { value, error } = await lease;
    expect(error).toBeUndefined();
    expect(value?.node_uuid).toBe(REQUESTER);
    expect(holder.store.seen.slice(fromHolder)).toEqual([{ lease: undefined, primary: HOLDER }]);
    expect(asker.store.seen.slice(fromAsker)).toEqual([{ lease: REQUESTER, primary: REQUESTER }]);
    expect((await holder.client.getDataset(id)).primary).toBe(REQUESTER);
  });
});
