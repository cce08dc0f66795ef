/**
 * The setup the HTTP tests share: a control service on a file store in a temp
 * directory (restartable on the same directory) with nodes A and B reported.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as net from 'node:net';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import * as path from 'node:path';
import winston from 'winston';
import {
  type ClusterAnswer,
  configurationVersionOfTag,
  type DatasetState,
  FlockerClient,
  type NodeReport,
} from '@flocker/api';
import { MemoryConfigurationStore } from '../ConfigurationStore';
import { type ControlService, type ControlServiceOptions, startControlService } from '../server';

export const NODE_A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
export const NODE_B = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
export const silentLogger = winston.createLogger({ silent: true });

/** A loopback node's report (A at 10.0.0.1, any other at 10.0.0.2), with nothing on it unless `extra` says. */
export function nodeReport(uuid: string, extra: Partial<NodeReport> = {}): NodeReport {
  return {
    uuid,
    era: `era-${uuid.slice(0, 4)}`,
    host: `10.0.0.${uuid === NODE_A ? 1 : 2}`,
    instance_id: `i-${uuid.slice(0, 4)}`,
    backend: 'loopback',
    manifestations: [],
    errors: [],
    ...extra,
  };
}

/**
 * A local-btrfs node's report: `mounted` datasets mounted at /mnt/<id>, `copies` held unmounted (attached), as of
 * configuration `version` when given (a "mounted" the service then takes as current).
 */
export function localBtrfsReport(uuid: string, mounted: string[], copies: string[] = [], version?: number): NodeReport {
  return nodeReport(uuid, {
    backend: 'local-btrfs',
    manifestations: [
      ...mounted.map((id) => ({
        dataset_id: id,
        blockdevice_id: id,
        size: 1 << 26,
        status: 'mounted' as const,
        path: `/mnt/${id}`,
      })),
      ...copies.map((id) => ({ dataset_id: id, blockdevice_id: id, size: 1 << 26, status: 'attached' as const })),
    ],
    ...(version !== undefined ? { configuration_version: version } : {}),
  });
}

/** The service on an ephemeral loopback port, logging nothing, on an in-memory store unless `options` names one. */
export function startOnLoopback(options: ControlServiceOptions = {}): Promise<ControlService> {
  return startControlService({
    port: 0,
    host: '127.0.0.1',
    store: new MemoryConfigurationStore(),
    logger: silentLogger,
    ...options,
  });
}

export interface ServiceOnDir {
  readonly svc: ControlService;
  readonly client: FlockerClient;
}

/** Starts the service on `dir` (a restart on the same directory keeps the configuration) and a client of it. */
export async function startOnDir(dir: string, nodeTimeoutSeconds = 30): Promise<ServiceOnDir> {
  const svc = await startControlService({
    port: 0,
    host: '127.0.0.1',
    dataDir: dir,
    logger: silentLogger,
    nodeTimeoutSeconds,
  });
  return { svc, client: new FlockerClient({ baseUrl: svc.url, timeoutMs: 5000 }) };
}

/** A temp directory (named from `prefix`), the service on it, and nodes A and B reported. */
export async function startWithTwoNodes(prefix: string): Promise<ServiceOnDir & { readonly dir: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  const started = await startOnDir(dir);
  await started.client.reportNodeState(nodeReport(NODE_A));
  await started.client.reportNodeState(nodeReport(NODE_B));
  return { ...started, dir };
}

/**
 * A temp directory (named from `prefix`), the service on it (`nodeTimeoutSeconds`), local-btrfs `nodes` reported,
 * and dataset `datasetId` (name 'db') created on the first of them, which reports it mounted.
 */
export async function startWithLocalDataset(
  prefix: string,
  datasetId: string,
  nodes: readonly [string, ...string[]],
  nodeTimeoutSeconds: number,
): Promise<ServiceOnDir & { readonly dir: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  const started = await startOnDir(dir, nodeTimeoutSeconds);
  for (const n of nodes) await started.client.reportNodeState(localBtrfsReport(n, []));
  await started.client.createDataset({ primary: nodes[0], dataset_id: datasetId, metadata: { name: 'db' } });
  await started.client.reportNodeState(localBtrfsReport(nodes[0], [datasetId]));
  return { ...started, dir };
}

/** The service on loopback (startOnLoopback), a client of it, and nodes A and B reported. */
export async function startOnLoopbackWithTwoNodes(): Promise<ServiceOnDir> {
  const svc = await startOnLoopback();
  const client = new FlockerClient({ baseUrl: svc.url, timeoutMs: 5000 });
  await client.reportNodeState(nodeReport(NODE_A));
  await client.reportNodeState(nodeReport(NODE_B));
  return { svc, client };
}

/** A watch read answer by answer (the client's own iterator, one per call of next()). */
export interface WatchReader {
  next(): Promise<ClusterAnswer>;
  close(): void;
}

/** Reads a watch (FlockerClient.watchCluster: `node`'s view, or the whole cluster's when undefined) as it comes. */
export function watchReader(client: FlockerClient, node: string | undefined, since?: string): WatchReader {
  const abort = new AbortController();
  const it = client.watchCluster(node, since, { signal: abort.signal })[Symbol.asyncIterator]();
  return {
    next: async (): Promise<ClusterAnswer> => {
      const r = await it.next();
      if (r.done === true) throw new Error('the watch ended');
      return r.value;
    },
    close: () => abort.abort(),
  };
}

/** POSTs `body` as JSON to `target` on the service; the status and the JSON answer. */
export async function postJson(
  svc: ServiceOnDir,
  target: string,
  body: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await fetch(`${svc.svc.url}${target}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: r.status, json: (await r.json()) as Record<string, unknown> };
}

/** Closes the service and removes its directory. */
export async function closeAndRemove(svc: ControlService, dir: string): Promise<void> {
  await svc.close();
  rmSync(dir, { recursive: true, force: true });
}

/** The configuration version the service is at, from the agent channel's tag (NaN when it names none). */
export async function configurationVersionOf(client: FlockerClient): Promise<number> {
  return configurationVersionOfTag((await client.waitForCluster(undefined, 0)).configuration_tag) ?? Number.NaN;
}

/** A dataset's entry in the whole /v1/state/datasets list (the stale-"mounted" rule as the list applies it). */
export async function stateInList(client: FlockerClient, datasetId: string): Promise<DatasetState | undefined> {
  return (await client.listDatasetState()).find((s) => s.dataset_id === datasetId);
}

/**
 * One request over a fresh connection (with `headers` added); the raw answer (status line, headers, body) with its
 * Date header blanked.
 */
export function rawAnswer(
  port: number,
  method: string,
  target: string,
  headers: Record<string, string> = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('end', () =>
      resolve(
        Buffer.concat(chunks)
          .toString('latin1')
          .replace(/^Date: .*$/m, 'Date: -'),
      ),
    );
    socket.on('error', reject);
    const extra = Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
    socket.write(`${method} ${target} HTTP/1.1\r\nHost: localhost\r\n${extra}Connection: close\r\n\r\n`);
  });
}

/** What sendRaw answers. */
export interface RawHttpAnswer {
  status: number;
  contentType: string;
  body: string;
}

export interface RawHttpTls {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

/** A raw request to `url` carrying `headers` as given (Host included: what a browser on a rebound name sends). */
export function sendRaw(
  url: string,
  method: string,
  urlPath: string,
  headers: Record<string, string>,
  body?: string | Buffer,
  tls?: RawHttpTls,
): Promise<RawHttpAnswer> {
  const u = new URL(url);
  const request = tls === undefined ? httpRequest : httpsRequest;
  return new Promise<RawHttpAnswer>((resolve, reject) => {
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        method,
        path: urlPath,
        headers: { ...headers, ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}) },
        ...(tls !== undefined ? { ...tls, servername: 'localhost' } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            contentType: String(res.headers['content-type'] ?? ''),
            body: Buffer.concat(chunks).toString(),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
