/**
 * Committer.onApplied (session 22, the lease hand-over's grant in the release's commit): called with the latest
 * configuration once a write that changed it is queued, before its commit starts; a write made then from a microtask
 * shares that commit. A write that changed nothing, or was refused, calls nothing.
 */
import type { Applied, Configuration } from './configuration';
import { emptyConfiguration } from './configuration';
import { Committer } from './committer';
import { MemoryConfigurationStore } from './ConfigurationStore';
import { ConfigurationError } from './errors';
import { silentLogger } from './testing/httpService';

const bump = (c: Configuration): Applied<number> => ({
  config: { ...c, version: c.version + 1 },
  result: c.version + 1,
  status: 200,
});
const nothing = (c: Configuration): Applied<undefined> => ({ config: c, result: undefined, status: 200 });
const refused = (): Applied<undefined> => {
  throw new ConfigurationError('LEASE_HELD', 'held');
};

function committer(onApplied: (latest: Configuration) => void): { c: Committer; store: MemoryConfigurationStore } {
  const store = new MemoryConfigurationStore();
  const c = new Committer({
    store,
    logger: silentLogger,
    now: () => 0,
    initial: emptyConfiguration,
    onChange: () => undefined,
    onApplied,
  });
  return { c, store };
}

it('a write made from a microtask after onApplied shares the commit of the write that called it', async () => {
  let joined: Promise<Applied<number>> | undefined;
  const seen: number[] = [];
  const { c, store } = committer((latest) => {
    seen.push(latest.version);
    if (joined === undefined) joined = Promise.resolve().then(() => c.mutate(bump));
  });
  const first = await c.mutate(bump);
  const second = await joined;
  expect([first.result, second?.result]).toEqual([1, 2]);
  expect(store.commits).toBe(1);
  expect(store.committed.version).toBe(2);
  expect(seen).toEqual([1, 2]);
});

it('a write that changed nothing or was refused calls nothing', async () => {
  const seen: number[] = [];
  const { c } = committer((latest) => seen.push(latest.version));
  await c.mutate(nothing);
  await expect(c.mutate(refused)).rejects.toThrow('held');
  expect(seen).toEqual([]);
});
