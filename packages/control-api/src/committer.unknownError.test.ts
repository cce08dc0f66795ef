/**
 * A store failing with an error it did not classify (not a StoreError: a bug, an unexpected client error) may have
 * applied the write: the writers are told STORE_OUTCOME_UNKNOWN, never STORE_UNAVAILABLE, since clients re-send a
 * write answered STORE_UNAVAILABLE ("nothing written") to another replica (FXR's 7441b22). A StoreError the store
 * raised itself keeps its meaning.
 */
import type { Applied, Configuration } from './configuration';
import { emptyConfiguration } from './configuration';
import { Committer } from './committer';
import { MemoryConfigurationStore } from './ConfigurationStore';
import { StoreError } from './errors';
import { silentLogger } from './testing/httpService';

class FailingStore extends MemoryConfigurationStore {
  constructor(private readonly failure: unknown) {
    super();
  }
  override async commit(): Promise<void> {
    await Promise.resolve();
    throw this.failure;
  }
}

const bump = (c: Configuration): Applied<undefined> => ({
  config: { ...c, version: c.version + 1 },
  result: undefined,
  status: 200,
});

const committerOn = (store: MemoryConfigurationStore) =>
  new Committer({ store, logger: silentLogger, now: () => 0, initial: emptyConfiguration, onChange: () => undefined });

it('an unclassified store failure is answered STORE_OUTCOME_UNKNOWN', async () => {
  await expect(committerOn(new FailingStore(new Error('socket hang up'))).mutate(bump)).rejects.toMatchObject({
    code: 'STORE_OUTCOME_UNKNOWN',
  });
});

it("a store's own 'unavailable' error is passed on as it is", async () => {
  const err = new StoreError('STORE_UNAVAILABLE', 'etcd unreachable: nothing was sent');
  await expect(committerOn(new FailingStore(err)).mutate(bump)).rejects.toBe(err);
});

it('a StoreError the store may raise after sending (STORE_CORRUPT: an answer it could not read) is STORE_OUTCOME_UNKNOWN', async () => {
  // Review FR19-1: reworded STORE_UNAVAILABLE ("nothing written"), a client re-sent a write that may have landed.
  const err = new StoreError('STORE_CORRUPT', "etcd's head is not valid JSON");
  await expect(committerOn(new FailingStore(err)).mutate(bump)).rejects.toMatchObject({
    code: 'STORE_OUTCOME_UNKNOWN',
  });
});

it('STORE_BASE_UNKNOWN (raised before sending) is STORE_UNAVAILABLE: nothing was written', async () => {
  await expect(
    committerOn(new FailingStore(new StoreError('STORE_BASE_UNKNOWN', 'not sent'))).mutate(bump),
  ).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
});
