/**
 * A test file's real etcd (started before its tests, stopped after them) and control replicas on it, closed after
 * each test or after the file's tests; for the tests of replicas sharing one etcd.
 */
import { FlockerClient } from '@flocker/api';
import type { ConfigurationStore } from '../ConfigurationStore';
import { ControlState, type ControlStateOptions } from '../ControlState';
import { EtcdConfigurationStore, type EtcdStoreOptions } from '../etcd/EtcdConfigurationStore';
import { type ControlService, type ControlServiceOptions, startControlService } from '../server';
import { EtcdTestCluster } from './etcdCluster';
import { silentLogger } from './httpService';

/** A replica and a client of it. */
export interface Replica {
  readonly svc: ControlService;
  readonly client: FlockerClient;
}

export interface EtcdReplicas {
  /** The file's etcd's client endpoints. */
  readonly endpoints: string[];
  /** A store of the file's etcd under `prefix` (one cluster a prefix). */
  store(prefix: string, options?: Partial<EtcdStoreOptions>): EtcdConfigurationStore;
  /** A control replica (loopback, any port, silent) on `store`, with `options`; its client times out after `timeoutMs`. */
  start(store: ConfigurationStore, options?: ControlServiceOptions, timeoutMs?: number): Promise<Replica>;
  /** A replica's control state alone (no HTTP) on the file's etcd under `prefix`, silent, with `options`. */
  openState(prefix: string, options: Omit<ControlStateOptions, 'store' | 'logger'>): Promise<ControlState>;
  /** Closes the replicas started so far (a test's replicas going away). */
  closeAll(): Promise<void>;
}

/** Registers the file's hooks: `members` etcd members (default 3); replicas closed after each test or after all. */
export function etcdReplicas(closeAfter: 'each' | 'all', members?: number): EtcdReplicas {
  let etcd: EtcdTestCluster | undefined;
  const replicas: Array<{ close(): Promise<void> }> = [];
  const closeAll = async (): Promise<void> => {
    await Promise.all(replicas.splice(0).map((s) => s.close()));
  };
  beforeAll(async () => {
    etcd = await EtcdTestCluster.start(members);
  });
  if (closeAfter === 'each') afterEach(closeAll);
  afterAll(async () => {
    await closeAll();
    await etcd?.stop();
  });
  const started = (): EtcdTestCluster => {
    if (etcd === undefined) throw new Error('etcd is not started (call from a test or a hook)');
    return etcd;
  };
  const store = (prefix: string, options: Partial<EtcdStoreOptions> = {}): EtcdConfigurationStore =>
    new EtcdConfigurationStore({ endpoints: started().endpoints, prefix, ...options });
  return {
    get endpoints() {
      return started().endpoints;
    },
    store,
    async start(configStore, options = {}, timeoutMs = 10_000) {
      const svc = await startControlService({
        port: 0,
        host: '127.0.0.1',
        store: configStore,
        logger: silentLogger,
        ...options,
      });
      replicas.push(svc);
      return { svc, client: new FlockerClient({ baseUrl: svc.url, timeoutMs }) };
    },
    async openState(prefix, options) {
      const state = await ControlState.open({ store: store(prefix), logger: silentLogger, ...options });
      replicas.push(state);
      return state;
    },
    closeAll,
  };
}
