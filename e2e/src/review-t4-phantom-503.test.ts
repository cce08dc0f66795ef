/**
 * Review T4 (session 19): a configuration write answered `503 STORE_UNAVAILABLE` ("etcd did not
 * confirm the write") while etcd quorum is lost is applied later anyway, once quorum is back. The
 * answer reads as a clean failure (docs/production.md: "with quorum lost, writes fail cleanly (HTTP
 * 503 ...)"), so a user or script that retries a create gets two datasets, and one that gives up
 * finds a volume it was told was never made (or a lease it was told it did not get).
 *
 * How: three etcd members; the two followers are killed -9, so the surviving leader appends the
 * transaction to its log but cannot commit it; the replica times out and answers 503. When a
 * follower restarts, the old leader (its log the longest) wins the election and commits the entry.
 */
import { FlockerClient } from '@flocker/api';
import { etcdStoreArgs, useEtcdBed } from './testing/etcdBed';

jest.setTimeout(180_000);

const theBed = useEtcdBed('flocker-t4-phantom-');

it('a create answered 503 while quorum is lost either never lands or says it may still land', async () => {
  const bed = theBed();
  const { etcd } = bed;
  const args = etcdStoreArgs({ endpoints: etcd.endpoints, prefix: `/t4-phantom-${process.pid}`, etcdTimeout: 2 });
  const { url } = await bed.startReplica(args, 'control-1.log');
  const client = new FlockerClient({ baseUrl: url, timeoutMs: 10_000 });
  const node = '11111111-2222-4333-8444-555555555555';
  await client.reportNodeState({
    uuid: node,
    era: 'era-t4',
    host: '10.0.0.1',
    instance_id: 'i-t4',
    backend: 'loopback',
    manifestations: [],
    errors: [],
  });
  await client.createDataset({ primary: node, maximum_size: 64 * 1024 * 1024, metadata: { name: 'before' } });

  const leader = etcd.leader();
  const followers = [0, 1, 2].filter((i) => i !== leader);
  await Promise.all(followers.map((i) => etcd.kill(i)));
  const answer = await client
    .createDataset({ primary: node, maximum_size: 64 * 1024 * 1024, metadata: { name: 't4-answered-503' } })
    .then(
      () => 'accepted',
      (err: unknown) => String(err),
    );
  // A 503 either way: STORE_UNAVAILABLE when nothing was sent, STORE_OUTCOME_UNKNOWN when it was sent unconfirmed
  // (the code the fix added for this case; T4 expected STORE_UNAVAILABLE, the only 503 then).
  expect(answer).toMatch(/STORE_UNAVAILABLE|STORE_OUTCOME_UNKNOWN/);
  await new Promise((r) => setTimeout(r, 5_000));
  for (const i of followers) await etcd.restart(i);

  // Quorum back: give the replica's watch time to deliver whatever etcd committed.
  let landed = false;
  const until = Date.now() + 15_000;
  while (Date.now() < until && !landed) {
    landed = (await client.listDatasets().catch(() => [])).some((d) => d.metadata['name'] === 't4-answered-503');
    await new Promise((r) => setTimeout(r, 500));
  }
  // Either the write never lands, or its answer said that it might.
  expect({ landed, answer }).toEqual(
    landed
      ? { landed, answer: expect.stringMatching(/may (still )?(be|have been) (applied|stored)|outcome (is )?unknown/i) }
      : { landed, answer },
  );
});
