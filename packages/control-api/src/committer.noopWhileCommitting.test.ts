/**
 * A write that changes nothing, applied while a commit is in flight, waits for that pending write (mutate: "even an
 * answer that changed nothing depends on pending writes"). It must be answered once that commit is durable; it was
 * left waiting for some later commit (found by session 17 S7 through a report whose settle stillAsSeen skipped whole:
 * the agent's report went unanswered).
 */
import type { Applied, Configuration } from './configuration';
import { emptyConfiguration } from './configuration';
import { Committer } from './committer';
import { MemoryConfigurationStore } from './ConfigurationStore';
import { silentLogger } from './testing/httpService';

class HeldStore extends MemoryConfigurationStore {
  private open: (() => void) | undefined;
  private readonly gate = new Promise<void>((resolve) => (this.open = resolve));
  waiting = 0;
  release(): void {
    this.open?.();
  }
  override async commit(config: Configuration): Promise<void> {
    this.waiting += 1;
    await this.gate;
    await super.commit(config);
  }
}

const bump = (c: Configuration): Applied<undefined> => ({
  config: { ...c, version: c.version + 1 },
  result: undefined,
  status: 200,
});
const nothing = (c: Configuration): Applied<undefined> => ({ config: c, result: undefined, status: 200 });

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 2));
  if (!cond()) throw new Error('timed out');
}

it('a write changing nothing during a commit is answered once that commit is durable', async () => {
  const store = new HeldStore();
  const committer = new Committer({
    store,
    logger: silentLogger,
    now: () => 0,
    initial: emptyConfiguration,
    onChange: () => undefined,
  });
  const first = committer.mutate(bump);
  await until(() => store.waiting === 1);
  let answered = false;
  const second = committer.mutate(nothing).then(() => (answered = true));
  store.release();
  await first;
  await until(() => answered);
  await second;
  expect(committer.configuration.version).toBe(emptyConfiguration.version + 1);
});
