/**
 * The metrics and health listener every Flocker process runs (node:http, no framework):
 *   GET /metrics  Prometheus text format of the process's registry
 *   GET /healthz  liveness: 200 while the event loop answers
 *   GET /readyz   readiness: 200 when every named check passes, else 503; JSON names the failed checks
 * Local-only (127.0.0.1) by default: nothing here is authenticated. On a connection over loopback (to a loopback
 * listener, or to a wildcard one over 127.x or ::1), a request whose Host names neither an address nor this listener
 * (localhost, this machine's hostname, allowedHosts) is refused 403 HOST_NOT_ALLOWED (logged once per name a minute):
 * a web page whose DNS name was re-pointed at the listener (DNS rebinding) could read it otherwise. A connection on a
 * network address checks no Host (see startMetricsServer), unless the check is on for every connection
 * (checkHost 'always': agent.yml metrics.check_host, flocker-control --metrics-check-host, FLOCKER_METRICS_CHECK_HOST),
 * as a port published from a container needs (review s28 G3).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type AddressInfo, isIPv4 } from 'node:net';
import { hostname } from 'node:os';
import { hostAllowList, hostRefusal } from '@flocker/runtime';
import type { Registry } from 'prom-client';
import { readiness, type HealthCheck } from './health';

export const DEFAULT_METRICS_ADDRESS = '127.0.0.1';

/** Default metrics ports, one per process so that the processes of one host never collide. */
export const DEFAULT_METRICS_PORTS = {
  'control-service': 4530,
  'dataset-agent': 4531,
  'docker-plugin': 4532,
  'container-agent': 4533,
  'csi-driver': 4534,
} as const;

export interface MetricsEndpoints {
  readonly registry: Registry;
  /** Readiness checks; none = ready whenever alive. */
  readonly checks?: readonly HealthCheck[];
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(text);
}

/**
 * Answers /metrics, /healthz and /readyz; returns false for any other path (the caller answers it), so the
 * endpoints can also sit on a server the process already has.
 */
export function handleMetricsRequest(e: MetricsEndpoints, req: IncomingMessage, res: ServerResponse): boolean {
  const path = (req.url ?? '/').split('?')[0];
  if (path !== '/metrics' && path !== '/healthz' && path !== '/readyz') return false;
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    sendJson(res, 405, { description: `${req.method ?? ''} is not allowed on ${path}; use GET.` });
    return true;
  }
  if (path === '/healthz') {
    sendJson(res, 200, { status: 'ok' });
  } else if (path === '/readyz') {
    readiness(e.checks ?? []).then(
      (r) =>
        sendJson(res, r.ready ? 200 : 503, {
          status: r.ready ? 'ready' : 'not ready',
          failed: r.failed,
          checks: r.checks,
          ...(r.ready ? {} : { description: `not ready: ${r.failed.join(', ')} failed` }),
        }),
      (err: unknown) => sendJson(res, 500, { description: String(err) }),
    );
  } else {
    e.registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': e.registry.contentType });
        res.end(text);
      },
      (err: unknown) => sendJson(res, 500, { description: `collecting metrics failed: ${String(err)}` }),
    );
  }
  return true;
}

export interface MetricsServerOptions extends MetricsEndpoints {
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** 0 = any free port. */
  readonly port: number;
  /**
   * DNS names (besides localhost, the `host` name, this machine's hostname and FLOCKER_METRICS_ALLOWED_HOSTS,
   * comma-separated) a request's Host may carry on a connection over loopback; an IP address always may.
   */
  readonly allowedHosts?: readonly string[];
  /** Where a refused Host is told (once per name a minute, naming the setting); default: not told. */
  readonly logger?: MetricsLogger;
  /** Which connections have their Host checked (see MetricsCheckHost); default FLOCKER_METRICS_CHECK_HOST, else 'loopback'. */
  readonly checkHost?: MetricsCheckHost;
}

/**
 * Which connections have their Host checked. 'loopback' (the default): those arriving on a loopback address, the
 * DNS-rebinding path of a listener in the host's own network namespace. 'always': every connection, for a listener a
 * browser reaches through a NAT or proxy, which the connection leaves with a network address: a port published from a
 * container (docker-proxy, or DNAT from the host's 127.0.0.1) arrives on the container's bridge address (review s28
 * G3). With 'always', scrapers that name the listener by a DNS name (FQDN, Compose service) need that name allowed.
 */
export const METRICS_CHECK_HOST_MODES = ['loopback', 'always'] as const;
export type MetricsCheckHost = (typeof METRICS_CHECK_HOST_MODES)[number];

/** Thrown for a FLOCKER_METRICS_CHECK_HOST that is not a mode (the process should not start half-protected). */
export class MetricsConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'MetricsConfigError';
  }
}

/** The mode: the process's own setting, else FLOCKER_METRICS_CHECK_HOST (one setting for every process), else 'loopback'. */
export function metricsCheckHost(
  setting: MetricsCheckHost | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env,
): MetricsCheckHost {
  if (setting !== undefined) return setting;
  const text = (env.FLOCKER_METRICS_CHECK_HOST ?? '').trim().toLowerCase();
  if (text === '') return 'loopback';
  const mode = METRICS_CHECK_HOST_MODES.find((m) => m === text);
  if (mode === undefined)
    throw new MetricsConfigError(
      `FLOCKER_METRICS_CHECK_HOST=${JSON.stringify(env.FLOCKER_METRICS_CHECK_HOST)} is not a mode: use loopback or always`,
    );
  return mode;
}

/** Whether a connection to a listener on `listenHost` that arrived on `localAddress` has its Host checked. */
export function hostChecked(mode: MetricsCheckHost, listenHost: string, localAddress: string | undefined): boolean {
  return mode === 'always' || isLoopbackListen(listenHost) || isLoopbackAddress(localAddress);
}

/** The part of a process's logger (winston) the listener uses. */
export interface MetricsLogger {
  warn(message: string, meta: Record<string, unknown>): unknown;
}

export interface MetricsServer {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/** FLOCKER_METRICS_ALLOWED_HOSTS: comma-separated names (one setting for every process of a host). */
function allowedFromEnv(): string[] {
  return (process.env.FLOCKER_METRICS_ALLOWED_HOSTS ?? '')
    .split(',')
    .map((n) => n.trim())
    .filter((n) => n !== '');
}

/** Whether `host` is a loopback address or localhost: a listener there answers only this machine. */
export function isLoopbackListen(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  return isIPv4(h) && h.startsWith('127.');
}

/** Whether a connection's local address is loopback (127.x, ::1, IPv4-mapped ::ffff:127.x on a dual-stack socket). */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined) return false;
  const a = address.toLowerCase();
  if (a === '::1') return true;
  const v4 = a.startsWith('::ffff:') ? a.slice('::ffff:'.length) : a;
  return isIPv4(v4) && v4.startsWith('127.');
}

/** How often one refused Host is logged again. */
const REFUSAL_LOG_INTERVAL_MS = 60_000;
/** Hosts remembered for that (a flood of names forgets the oldest, never grows without bound). */
const REFUSAL_LOG_NAMES = 256;

export async function startMetricsServer(o: MetricsServerOptions): Promise<MetricsServer> {
  const host = o.host ?? DEFAULT_METRICS_ADDRESS;
  // Names a scraper plausibly uses besides addresses: this machine's hostname (lower-cased by hostAllowList); the
  // environment's names and the process's own setting (agent.yml metrics.allowed_hosts, the control service's
  // --allowed-host) together.
  const hosts = hostAllowList(host, [hostname(), ...allowedFromEnv(), ...(o.allowedHosts ?? [])]);
  // Only connections over loopback have their Host checked (review s27 F5, s28 F2). That is the DNS-rebinding
  // target: only this machine's clients reach it, and they name it by address, localhost or its hostname; a wildcard
  // listener (0.0.0.0, ::) is reached over loopback too, by a browser on this machine. A connection on a network
  // address is answered by any name, as the listener answers every host of that network unauthenticated anyway, and
  // its scrapers name it by FQDN, Compose service or Kubernetes Service name, which the check refused (403, the
  // target "down") after an upgrade. A browser reaching the listener through NAT or a proxy (a published container
  // port: review s28 G3) arrives on a network address: that needs checkHost 'always', the operator's choice.
  const mode = metricsCheckHost(o.checkHost);
  const checked = (req: IncomingMessage): boolean => hostChecked(mode, host, req.socket.localAddress);
  const logged = new Map<string, number>();
  const tell = (name: string, refusal: string): void => {
    if (o.logger === undefined) return;
    const now = Date.now();
    const last = logged.get(name);
    if (last !== undefined && now - last < REFUSAL_LOG_INTERVAL_MS) return;
    logged.delete(name);
    logged.set(name, now);
    if (logged.size > REFUSAL_LOG_NAMES) logged.delete(logged.keys().next().value ?? name);
    o.logger.warn(
      'metrics listener refused a request naming another host (403): if it names this host, add it to FLOCKER_METRICS_ALLOWED_HOSTS or the allowed-hosts setting',
      {
        code: 'HOST_NOT_ALLOWED',
        host: name,
        setting: 'FLOCKER_METRICS_ALLOWED_HOSTS, agent.yml metrics.allowed_hosts, flocker-control --allowed-host',
        description: refusal,
      },
    );
  };
  const server: Server = createServer((req, res) => {
    const refusal = checked(req)
      ? hostRefusal(req.headers.host, hosts, {
          listener: 'This metrics listener',
          allowHint: (name) =>
            `add ${name} to FLOCKER_METRICS_ALLOWED_HOSTS (comma-separated) in the process's environment, to ` +
            "agent.yml's metrics.allowed_hosts, or (control service) to --allowed-host",
        })
      : undefined;
    if (refusal !== undefined) {
      tell(String(req.headers.host).slice(0, 255), refusal);
      sendJson(res, 403, { code: 'HOST_NOT_ALLOWED', description: refusal });
    } else if (!handleMetricsRequest(o, req, res))
      sendJson(res, 404, { description: `There is no ${req.url ?? ''} here; try /metrics, /healthz or /readyz.` });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // Never keeps a stopping process alive.
  server.unref();
  const port = (server.address() as AddressInfo).port;
  const urlHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${urlHost}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
