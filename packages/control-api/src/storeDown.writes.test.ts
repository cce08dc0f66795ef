/**
 * Review FR19-7 (session 19): a replica whose store probe already said the store does not answer still took
 * configuration writes, sent them (a minority etcd member takes the transaction and answers nothing), held each
 * ~3 x --etcd-timeout and answered STORE_OUTCOME_UNKNOWN: the client could not re-send even a create it could have
 * sent elsewhere. Now they are refused at once with STORE_UNAVAILABLE, nothing sent, so clients move on (7441b22).
 */
import { MemoryConfigurationStore, type StoreListener } from './ConfigurationStore';
import { createDataset } from './configuration';
import { ControlState } from './ControlState';
import { isControlError } from './errors';
import { A, D1, letterReport } from './testing/fixtures';
import winston from 'winston';

it('configuration writes are refused with STORE_UNAVAILABLE, nothing sent, while the store does not answer', async () => {
  const memory = new MemoryConfigurationStore();
  let listener: StoreListener | undefined;
  const store = Object.assign(memory, {
    subscribe: (l: StoreListener) => {
      listener = l;
      return Promise.resolve();
    },
  });
  const state = await ControlState.open({
    store,
    nodeTimeoutMs: 30_000,
    leaseGraceMs: 5_000,
    logger: winston.createLogger({ silent: true }),
    livenessCheckMs: 3_600_000,
  });
  try {
    await state.report(letterReport(A));
    listener?.reachable?.(false, 'etcd did not answer a read');
    const commits = memory.commits;
    const err: unknown = await state
      .mutate((c) => createDataset(c, { primary: A, dataset_id: D1, metadata: { name: 'x' } }))
      .then(
        () => 'accepted',
        (e: unknown) => e,
      );
    expect(isControlError(err) ? err.code : err).toBe('STORE_UNAVAILABLE');
    expect(memory.commits).toBe(commits);
    expect(state.configuration.datasets.size).toBe(0);
    listener?.reachable?.(true);
    await state.mutate((c) => createDataset(c, { primary: A, dataset_id: D1, metadata: { name: 'x' } }));
    expect([...state.configuration.datasets.keys()]).toEqual([D1]);
  } finally {
    await state.close();
  }
});
