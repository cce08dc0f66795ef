import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  controlMetrics,
  datasetAgentMetrics,
  LabelBound,
  newRegistry,
  pluginMetrics,
  readiness,
  releaseVersion,
  registerAgentSampler,
  registerCertificateExpiry,
  startMetricsServer,
  statusLabel,
  type MetricsServer,
} from './index';

interface ReadyBody {
  failed: string[];
  checks: { name: string; ok: boolean; error?: string }[];
  description?: string;
}

/** /readyz's body, checked by shape (this package has no zod). */
function readyBody(doc: unknown): ReadyBody {
  if (typeof doc !== 'object' || doc === null || !('failed' in doc) || !('checks' in doc))
    throw new Error(`not a readiness body: ${JSON.stringify(doc)}`);
  const { failed, checks } = doc;
  if (!Array.isArray(failed) || !Array.isArray(checks)) throw new Error('failed and checks must be arrays');
  const description = 'description' in doc && typeof doc.description === 'string' ? doc.description : undefined;
  return {
    failed: failed.map(String),
    checks: checks.map((c: { name?: unknown; ok?: unknown; error?: unknown }) => ({
      name: String(c.name),
      ok: c.ok === true,
      ...(typeof c.error === 'string' ? { error: c.error } : {}),
    })),
    ...(description !== undefined ? { description } : {}),
  };
}

/** The value of one sample line of a Prometheus text exposition, or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('LabelBound', () => {
  it('keeps known values, accepts up to cap new ones of the right shape, then answers other', () => {
    const b = new LabelBound(new Set(['A']), 2, /^[A-Z_]+$/);
    expect(b.value('A')).toBe('A');
    expect(b.value('B')).toBe('B');
    expect(b.value('not-a-code')).toBe('other');
    expect(b.value('C')).toBe('C');
    expect(b.value('D')).toBe('other');
    expect(b.value('B')).toBe('B');
    expect(b.value(undefined)).toBe('other');
  });

  it('statusLabel: known statuses as themselves, others by class', () => {
    expect(statusLabel(200)).toBe('200');
    expect(statusLabel(418)).toBe('4xx');
    expect(statusLabel(599)).toBe('5xx');
    expect(statusLabel(42)).toBe('other');
  });
});

describe('metric definitions', () => {
  it('control: requests by route template and status, errors by code; a second lookup is the same set', async () => {
    const registry = newRegistry('control-service');
    const m = controlMetrics(registry);
    expect(controlMetrics(registry)).toBe(m);
    m.request('get', '/v1/configuration/datasets/:dataset_id', 404, 0.003, 'NOT_FOUND');
    m.request('post', '/v1/configuration/datasets', 201, 0.01);
    for (let i = 0; i < 500; i++) m.request('get', '/x', 400, 0.001, `CODE_${i}`);
    const text = await registry.metrics();
    expect(
      sample(
        text,
        'flocker_api_requests_total{method="GET",route="/v1/configuration/datasets/:dataset_id",status="404"}',
      ),
    ).toBe(1);
    expect(
      sample(text, 'flocker_api_errors_total{route="/v1/configuration/datasets/:dataset_id",code="NOT_FOUND"}'),
    ).toBe(1);
    // Error codes are bounded: beyond the cap they are counted as other.
    const codes = new Set(text.split('\n').filter((l) => l.startsWith('flocker_api_errors_total{route="/x"')));
    expect(codes.size).toBeLessThanOrEqual(101);
    expect(text).toContain('flocker_api_errors_total{route="/x",code="other"}');
    // The release is this package's version (the Debian packages stamp theirs into it).
    expect(releaseVersion()).toBe('0.1.0');
    expect(text).toContain('flocker_process_info{process="control-service",version="0.1.0"} 1');
    expect(text).toContain('process_cpu_user_seconds_total');
  });

  it('dataset agent: step histogram by kind and result (no dataset label), failures by code', async () => {
    const registry = newRegistry('dataset-agent');
    const m = datasetAgentMetrics(registry);
    m.step('mount', 0.2);
    m.step('attach', 1.5, 'ATTACH_FAILED');
    m.step('somethingNew', 0.1);
    const text = await registry.metrics();
    expect(sample(text, 'flocker_convergence_step_duration_seconds_count{kind="mount",result="ok"}')).toBe(1);
    expect(sample(text, 'flocker_convergence_step_duration_seconds_count{kind="other",result="ok"}')).toBe(1);
    expect(sample(text, 'flocker_convergence_step_failures_total{kind="attach",code="ATTACH_FAILED"}')).toBe(1);
    expect(text.split('\n').filter((l) => l.startsWith('flocker_convergence_step') && l.includes('dataset='))).toEqual(
      [],
    );
  });

  it('dataset agent gauges are sampled at scrape time; a failing sampler keeps the last sample', async () => {
    const registry = newRegistry('dataset-agent');
    let fail = false;
    registerAgentSampler(registry, () => {
      if (fail) throw new Error('boom');
      return {
        volumes: [
          { datasetId: 'd1', state: 'mounted', usedBytes: 4096, maximumBytes: 1 << 20 },
          { datasetId: 'd2', state: 'attached', maximumBytes: 2 << 20 },
        ],
        backoff: 1,
        leases: 3,
      };
    });
    let text = await registry.metrics();
    expect(sample(text, 'flocker_volumes{state="mounted"}')).toBe(1);
    expect(sample(text, 'flocker_volumes{state="attached"}')).toBe(1);
    expect(sample(text, 'flocker_volumes{state="backoff"}')).toBe(1);
    expect(sample(text, 'flocker_leases')).toBe(3);
    expect(sample(text, 'flocker_volume_used_bytes{dataset="d1"}')).toBe(4096);
    expect(sample(text, 'flocker_volume_maximum_bytes{dataset="d2"}')).toBe(2 << 20);
    fail = true;
    text = await registry.metrics();
    expect(sample(text, 'flocker_volumes{state="mounted"}')).toBe(1);
  });

  it('plugin: Docker methods bounded, mount wait histogram', async () => {
    const registry = newRegistry('docker-plugin');
    const m = pluginMetrics(registry);
    m.request('VolumeDriver.Mount', 0.5, true);
    m.request('/evil/path', 0.1, false);
    m.mountWaitSeconds.observe({ result: 'ok' }, 0.4);
    const text = await registry.metrics();
    expect(sample(text, 'flocker_plugin_request_duration_seconds_count{method="VolumeDriver.Mount",result="ok"}')).toBe(
      1,
    );
    expect(sample(text, 'flocker_plugin_request_duration_seconds_count{method="other",result="error"}')).toBe(1);
    expect(sample(text, 'flocker_plugin_mount_wait_seconds_count{result="ok"}')).toBe(1);
  });

  it('certificate expiry: the notAfter of each certificate by role', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flocker-metrics-'));
    try {
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:prime256v1',
          '-nodes',
          '-subj',
          '/CN=test',
          '-days',
          '10',
          '-keyout',
          join(dir, 'k.pem'),
          '-out',
          join(dir, 'c.pem'),
        ],
        { stdio: 'ignore' },
      );
      const registry = newRegistry('dataset-agent');
      registerCertificateExpiry(registry, { node: readFileSync(join(dir, 'c.pem')), bogus: 'not a certificate' });
      registerCertificateExpiry(registry, { 'cluster-ca': readFileSync(join(dir, 'c.pem')) });
      const text = await registry.metrics();
      const expiry = sample(text, 'flocker_certificate_expiry_timestamp_seconds{role="node"}');
      expect(expiry).toBeDefined();
      const days = ((expiry ?? 0) - Date.now() / 1000) / 86400;
      expect(days).toBeGreaterThan(9);
      expect(days).toBeLessThanOrEqual(10);
      expect(text).toContain('flocker_certificate_expiry_timestamp_seconds{role="cluster-ca"}');
      expect(text).not.toContain('role="bogus"');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('readiness', () => {
  it('runs every check; a throwing, a rejecting and a hung check each fail by name', async () => {
    const r = await readiness([
      { name: 'store', check: () => undefined },
      { name: 'etcd', check: () => Promise.reject(new Error('no quorum')) },
      {
        name: 'driver',
        check: () => {
          throw new Error('bad');
        },
      },
      { name: 'control', check: () => new Promise(() => undefined), timeoutMs: 50 },
    ]);
    expect(r.ready).toBe(false);
    expect(r.failed).toEqual(['etcd', 'driver', 'control']);
    expect(r.checks.find((c) => c.name === 'etcd')?.error).toBe('no quorum');
    expect(r.checks.find((c) => c.name === 'control')?.error).toMatch(/no answer within 50 ms/);
    expect((await readiness([])).ready).toBe(true);
  });
});

describe('startMetricsServer', () => {
  let server: MetricsServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('serves /metrics, /healthz and /readyz on 127.0.0.1 by default; 404 and 405 otherwise', async () => {
    const registry = newRegistry('container-agent');
    let controlUp = true;
    server = await startMetricsServer({
      registry,
      port: 0,
      checks: [
        {
          name: 'control',
          check: () => {
            if (!controlUp) throw new Error('ECONNREFUSED');
          },
        },
      ],
    });
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const metrics = await fetch(`${server.url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toContain('text/plain');
    expect(await metrics.text()).toContain('flocker_process_info{process="container-agent"');
    const health = await fetch(`${server.url}/healthz`);
    expect(health.status).toBe(200);
    let ready = await fetch(`${server.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(readyBody(await ready.json()).failed).toEqual([]);
    controlUp = false;
    ready = await fetch(`${server.url}/readyz`);
    expect(ready.status).toBe(503);
    const body = readyBody(await ready.json());
    expect(body.failed).toEqual(['control']);
    expect(body.description).toBe('not ready: control failed');
    expect(body.checks[0]?.error).toBe('ECONNREFUSED');
    expect((await fetch(`${server.url}/nope`)).status).toBe(404);
    const post = await fetch(`${server.url}/metrics`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
  });
});
