/**
 * The configuration kept in an etcd v3 cluster, shared by several control replicas.
 *
 * Layout under the prefix (default /flocker):
 *   config          the whole configuration document (same encoding as the file snapshot)
 *   commit          a random id of the commit that wrote `config` (detects our own retried write)
 *   nodes/<uuid>    {"last_seen": epoch ms, "report": NodeReport}: liveness seen by every replica
 *
 * Every commit is a transaction: compare config's mod_revision with the revision the
 * new configuration was computed from, then put. A lost race answers StoreConflict
 * carrying the winner, which ControlState re-applies its pending changes onto. A write
 * is acknowledged only once etcd answered the transaction (i.e. a quorum committed it).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Etcd3, type IOptions, type Namespace, type Watcher } from 'etcd3';
import { z } from 'zod';
import { NodeReport } from '@flocker/api';
import type { Configuration } from '../configuration';
import { emptyConfiguration } from '../configuration';
import { decodeConfiguration, encodeConfiguration, type ConfigurationStore, type StoreListener } from '../ConfigurationStore';
import { ApiError } from '../errors';
import { StoreConflict } from './conflict';

export { StoreConflict };

export const DEFAULT_ETCD_PREFIX = '/flocker';
export const DEFAULT_ETCD_TIMEOUT_MS = 3000;
const CONFIG_KEY = 'config';
const COMMIT_KEY = 'commit';
const NODES_PREFIX = 'nodes/';

export interface EtcdStoreOptions {
  endpoints: string[];
  prefix?: string;
  /** PEM paths for TLS to etcd: the CA alone, or with a client certificate and key. */
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  /** Deadline of each etcd call; a write without an answer by then fails with STORE_UNAVAILABLE. */
  timeoutMs?: number;
  /** A node's unchanged report is re-published at most this often (its last_seen refresh). */
  reportRefreshMs?: number;
  /** Told about watch trouble (reconnects are automatic). */
  onError?: (err: unknown) => void;
}

const StoredReport = z.object({ last_seen: z.number(), report: NodeReport });

/** Parses `--etcd-endpoints a,b,c` into URLs (host:port gets http://). */
export function parseEndpoints(list: string): string[] {
  const out = list
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => (/^[a-z]+:\/\//.test(s) ? s : `http://${s}`));
  for (const e of out) {
    const u = URL.canParse(e) ? new URL(e) : undefined;
    if (u === undefined || (u.protocol !== 'http:' && u.protocol !== 'https:') || u.port === '') {
      throw new ApiError(400, 'BAD_ETCD_ENDPOINT', `"${e}" is not an etcd endpoint like http://127.0.0.1:2379.`);
    }
  }
  if (out.length === 0) throw new ApiError(400, 'BAD_ETCD_ENDPOINT', 'No etcd endpoint given (--etcd-endpoints).');
  return out;
}

function unavailable(action: string, err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  return new ApiError(503, 'STORE_UNAVAILABLE', `etcd did not ${action} (${err instanceof Error ? err.message : String(err)}); is a quorum of etcd members reachable?`);
}

export class EtcdConfigurationStore implements ConfigurationStore {
  readonly prefix: string;
  private readonly client: Etcd3;
  private readonly ns: Namespace;
  private readonly timeoutMs: number;
  private readonly reportRefreshMs: number;
  private readonly onError: (err: unknown) => void;
  /** etcd mod_revision of each configuration this store loaded, committed or watched. */
  private readonly revisions = new WeakMap<Configuration, number>();
  private loadedRevision = 0;
  private latest: Configuration = emptyConfiguration;
  private readonly published = new Map<string, { json: string; at: number }>();
  private watchers: Watcher[] = [];
  private closed = false;

  constructor(options: EtcdStoreOptions) {
    const hosts = options.endpoints;
    this.prefix = (options.prefix ?? DEFAULT_ETCD_PREFIX).replace(/\/+$/, '');
    this.timeoutMs = options.timeoutMs ?? DEFAULT_ETCD_TIMEOUT_MS;
    this.reportRefreshMs = options.reportRefreshMs ?? 5000;
    this.onError = options.onError ?? (() => undefined);
    const tls = options.caFile !== undefined;
    const etcdOptions: IOptions = {
      hosts,
      dialTimeout: this.timeoutMs,
      // Streams (watches) live forever; unary calls get a deadline so a lost quorum answers 503 instead of hanging.
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + this.timeoutMs }),
      ...(tls
        ? {
            credentials: {
              rootCertificate: readFileSync(options.caFile as string),
              ...(options.keyFile !== undefined ? { privateKey: readFileSync(options.keyFile) } : {}),
              ...(options.certFile !== undefined ? { certChain: readFileSync(options.certFile) } : {}),
            },
          }
        : {}),
    };
    this.client = new Etcd3(etcdOptions);
    this.ns = this.client.namespace(`${this.prefix}/`);
  }

  private decode(value: Buffer, modRevision: number): Configuration {
    let raw: unknown;
    try {
      raw = JSON.parse(value.toString('utf8'));
    } catch (err) {
      throw new ApiError(500, 'STORE_CORRUPT', `etcd key ${this.prefix}/${CONFIG_KEY} is not valid JSON: ${(err as Error).message}`);
    }
    const config = decodeConfiguration(raw);
    this.revisions.set(config, modRevision);
    return config;
  }

  async load(): Promise<Configuration> {
    let res;
    try {
      res = await this.ns.get(CONFIG_KEY).exec();
    } catch (err) {
      throw unavailable('answer a read', err);
    }
    const kv = res.kvs[0];
    this.loadedRevision = Number(res.header.revision);
    if (kv === undefined) {
      this.revisions.set(emptyConfiguration, 0);
      this.latest = emptyConfiguration;
      return emptyConfiguration;
    }
    this.latest = this.decode(kv.value, Number(kv.mod_revision));
    return this.latest;
  }

  /** True when etcd holds no configuration under the prefix (migration target check). */
  async isEmpty(): Promise<boolean> {
    const res = await this.ns.get(CONFIG_KEY).exec();
    return res.kvs.length === 0;
  }

  /**
   * Compare-and-swap from `base` (default: the last configuration this store saw).
   * Resolves once etcd committed; rejects StoreConflict when `base` is out of date.
   */
  async commit(config: Configuration, base?: Configuration): Promise<void> {
    if (this.closed) throw new ApiError(503, 'STORE_CLOSED', 'The configuration store is closed.');
    const from = base ?? this.latest;
    const expected = this.revisions.get(from);
    if (expected === undefined) {
      throw new ApiError(500, 'STORE_BASE_UNKNOWN', `Configuration v${from.version} was not read from etcd; cannot compare-and-swap from it.`);
    }
    const id = randomBytes(12).toString('hex');
    let res;
    try {
      res = await this.ns
        .if(CONFIG_KEY, 'Mod', '==', expected)
        .then(this.ns.put(CONFIG_KEY).value(encodeConfiguration(config)), this.ns.put(COMMIT_KEY).value(id))
        .else(this.ns.get(CONFIG_KEY), this.ns.get(COMMIT_KEY))
        .commit();
    } catch (err) {
      throw unavailable('confirm the write', err);
    }
    if (res.succeeded) {
      this.remember(config, Number(res.header.revision));
      return;
    }
    const current = res.responses[0]?.response_range?.kvs?.[0];
    const commitId = res.responses[1]?.response_range?.kvs?.[0]?.value.toString('utf8');
    if (current !== undefined && commitId === id) {
      // The client retried a transaction whose first attempt had committed: it is ours.
      this.remember(config, Number(current.mod_revision));
      return;
    }
    if (current === undefined) {
      throw new ApiError(500, 'STORE_CORRUPT', `etcd key ${this.prefix}/${CONFIG_KEY} vanished; restore it from a backup.`);
    }
    const winner = this.decode(current.value, Number(current.mod_revision));
    if (winner.version > this.latest.version) this.latest = winner;
    throw new StoreConflict(winner);
  }

  private remember(config: Configuration, revision: number): void {
    this.revisions.set(config, revision);
    if (config.version >= this.latest.version) this.latest = config;
  }

  /**
   * Delivers the stored node reports, then watches the configuration and the reports
   * for changes made through other replicas.
   */
  async subscribe(listener: StoreListener): Promise<void> {
    const start = String(this.loadedRevision + 1);
    let reports;
    try {
      reports = await this.ns.getAll().prefix(NODES_PREFIX).exec();
    } catch (err) {
      throw unavailable('answer a read', err);
    }
    for (const kv of reports.kvs) this.deliverReport(listener, kv.key.toString('utf8'), kv.value);
    const configWatch = await this.ns.watch().key(CONFIG_KEY).startRevision(start).create();
    configWatch.on('put', (kv) => {
      try {
        const config = this.decode(kv.value, Number(kv.mod_revision));
        if (config.version > this.latest.version) this.latest = config;
        listener.configuration(config);
      } catch (err) {
        this.onError(err);
      }
    });
    const nodesWatch = await this.ns.watch().prefix(NODES_PREFIX).startRevision(String(Number(reports.header.revision) + 1)).create();
    nodesWatch.on('put', (kv) => this.deliverReport(listener, kv.key.toString('utf8'), kv.value));
    for (const w of [configWatch, nodesWatch]) w.on('error', (err) => this.onError(err));
    this.watchers = [configWatch, nodesWatch];
  }

  private deliverReport(listener: StoreListener, key: string, value: Buffer): void {
    try {
      const parsed = StoredReport.parse(JSON.parse(value.toString('utf8')));
      listener.report(parsed.report, parsed.last_seen);
    } catch (err) {
      this.onError(new ApiError(500, 'STORE_CORRUPT', `etcd key ${this.prefix}/${key} is not a node report: ${String(err)}`));
    }
  }

  /**
   * Shares a node's report with the other replicas: at once when it changed, else at
   * most every reportRefreshMs (refreshing last_seen is all an unchanged report does).
   */
  publishReport(report: NodeReport, json: string, lastSeen: number): void {
    if (this.closed) return;
    const prev = this.published.get(report.uuid);
    if (prev !== undefined && prev.json === json && lastSeen - prev.at < this.reportRefreshMs) return;
    this.published.set(report.uuid, { json, at: lastSeen });
    this.ns
      .put(`${NODES_PREFIX}${report.uuid}`)
      .value(`{"last_seen":${lastSeen},"report":${json}}`)
      .exec()
      .catch((err: unknown) => {
        // Retry with the next report.
        this.published.delete(report.uuid);
        this.onError(unavailable('store a node report', err));
      });
  }

  /** Writes `config` unconditionally if the prefix is empty (or `force`): for migrate-store. */
  async replaceAll(config: Configuration, force: boolean): Promise<void> {
    const text = encodeConfiguration(config);
    const id = randomBytes(12).toString('hex');
    const put = [this.ns.put(CONFIG_KEY).value(text), this.ns.put(COMMIT_KEY).value(id)];
    const res = force ? await this.ns.if(CONFIG_KEY, 'Mod', '<', Number.MAX_SAFE_INTEGER).then(...put).commit() : await this.ns.if(CONFIG_KEY, 'Create', '==', 0).then(...put).commit();
    if (!res.succeeded) {
      throw new ApiError(409, 'STORE_NOT_EMPTY', `etcd already holds a configuration under ${this.prefix}/; pass --force to overwrite it.`);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.watchers.map((w) => w.cancel().catch(() => undefined)));
    this.client.close();
  }
}
