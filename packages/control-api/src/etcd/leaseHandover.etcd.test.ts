/**
 * The lease hand-over with two control replicas on etcd (session 21; the file store: leaseHandover.wait.test): the
 * request waits on one replica while the holder's plugin answers through the other, so the waiter wakes on the
 * configuration adopted from etcd's watch, not on a commit of its own replica.
 */
import { randomUUID } from 'node:crypto';
import { etcdReplicas } from '../testing/etcdReplicas';
import { eventually, HOLDER, holderAnswers, idleVolume, leaseBecomes, REQUESTER, timed } from '../testing/handover';

jest.setTimeout(90_000);

const bed = etcdReplicas('each');
const replica = (prefix: string, handoverWaitSeconds: number) =>
  bed.start(bed.store(prefix), { handoverWaitSeconds }, 30_000);

/** Two replicas of one cluster; the idle volume created through the second (the holder's), seen by the first. */
async function twoReplicas(name: string, wait = 20) {
  const prefix = `/t-${randomUUID()}`;
  const asker = await replica(prefix, wait);
  const holder = await replica(prefix, wait);
  const id = await idleVolume(holder.client, name);
  await leaseBecomes(asker.client, id, (l) => l?.release_on_request === true);
  return { asker, holder, id };
}

describe('lease hand-over across two etcd replicas', () => {
  it('a lease POST waiting on one replica is granted once the holder lets go through the other', async () => {
    const { asker, holder, id } = await twoReplicas('idle');
    const asked = timed(asker.client.acquireLease({ dataset_id: id, node_uuid: REQUESTER, expires: null }));
    await holderAnswers(holder.client, id, 'release');
    const { value, error, ms } = await asked;
    expect(error).toBeUndefined();
    expect(value?.node_uuid).toBe(REQUESTER);
    expect(ms).toBeLessThan(20_000);
    expect(asker.svc.state.configurationListenerCount).toBe(0);
  });

  it("an administrator's move waiting on one replica is refused at once when the holder declines through the other", async () => {
    const { asker, holder, id } = await twoReplicas('busy');
    const asked = timed(asker.client.updateDataset(id, { primary: REQUESTER }));
    await holderAnswers(holder.client, id, 'decline');
    const { error, ms } = await asked;
    expect({ status: error?.status, code: error?.code }).toEqual({ status: 409, code: 'LEASE_HELD' });
    expect(error?.description).toMatch(/declined to let go of it: a container on 10\.0\.0\.1 uses it\.$/);
    expect(ms).toBeLessThan(20_000);
    expect((await asker.client.getDataset(id)).primary).toBe(HOLDER);
    await eventually(() => asker.svc.state.configurationListenerCount === 0);
  });

  it('a DELETE with a silent holder is refused after the wait; the request is on both replicas', async () => {
    const { asker, holder, id } = await twoReplicas('silent', 0.5);
    const { error } = await timed(asker.client.deleteDataset(id));
    expect(error?.description).toMatch(/did not within 0\.5 s/);
    const seen = await leaseBecomes(holder.client, id, (l) => l?.release_requested !== undefined);
    expect(seen?.release_requested?.by).toBe('api');
  });
});
