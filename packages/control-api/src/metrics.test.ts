/**
 * The control service's metrics and health listener through HTTP: API requests by route template and status,
 * store commits, the cluster gauges, and /readyz failing by name while the store cannot be written.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import * as path from 'node:path';
import { FakeFullDisk } from '@flocker/api/testing';
import { FileConfigurationStore } from './ConfigurationStore';
import { registerNode } from './configuration';
import { aliveCount, convergence } from './metrics';
import { NODE_A, NODE_B, nodeReport, sendRaw, startOnLoopback } from './testing/httpService';

/** The value of one series in a Prometheus text exposition. */
function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('aliveCount', () => {
  // A wall clock stepped an hour back after the report: lastSeen is in the future, heardAt (monotonic) is not.
  it('counts by the monotonic time since heard, not by the wall-clock lastSeen (review T3 finding 1)', () => {
    const T = 30_000;
    let mono = 1_000_000;
    let wall = 5_000_000;
    const clock = { now: () => mono, wallNow: () => wall };
    const heard = { report: nodeReport(NODE_A), lastSeen: wall, heardAt: mono, clock };
    wall -= 3_600_000;
    mono += T + 1;
    wall += T + 1;
    expect(aliveCount([heard], wall, T)).toBe(0);
    // A step forward by an hour just after a report: still alive.
    const fresh = { report: nodeReport(NODE_B), lastSeen: wall, heardAt: mono, clock };
    wall += 3_600_000;
    expect(aliveCount([fresh], wall, T)).toBe(1);
  });
});

describe('convergence', () => {
  const ds = (primary: string, deleted = false) => ({
    primary,
    deleted,
    metadata: {},
    maximum_size: 1 << 20,
  });
  const mounted = (uuid: string, dataset: string) => ({
    report: nodeReport(uuid, {
      manifestations: [{ dataset_id: dataset, blockdevice_id: 'b', size: 1, status: 'mounted' as const }],
    }),
    lastSeen: 0,
  });

  it('counts datasets not mounted on their primary and remembers since when, forgetting converged ones', () => {
    const since = new Map<string, number>();
    const config = {
      datasets: new Map([
        ['d1', ds(NODE_A)],
        ['d2', ds(NODE_B)],
        ['d3', ds(NODE_A, true)],
      ]),
    };
    // d2 mounted on the wrong node still converges; d3 is deleted.
    expect(convergence(config, [mounted(NODE_A, 'd2')], 1_000, since)).toEqual({
      datasets: 2,
      converging: 2,
      oldestSeconds: 0,
    });
    expect(convergence(config, [mounted(NODE_A, 'd1')], 61_000, since)).toEqual({
      datasets: 2,
      converging: 1,
      oldestSeconds: 60,
    });
    expect([...since.keys()]).toEqual(['d2']);
    expect(convergence(config, [mounted(NODE_A, 'd1'), mounted(NODE_B, 'd2')], 62_000, since)).toEqual({
      datasets: 2,
      converging: 0,
      oldestSeconds: 0,
    });
    expect(since.size).toBe(0);
  });
});

describe('convergence against the whole-walk reference (random clusters, repeated samples)', () => {
  /** The earlier algorithm: a Map of Sets over every manifestation, rebuilt per sample. */
  function reference(
    datasets: ReadonlyMap<string, { primary: string; deleted: boolean }>,
    reports: { report: { uuid: string; manifestations: { dataset_id: string; status: string }[] } }[],
    now: number,
    since: Map<string, number>,
  ): { datasets: number; converging: number; oldestSeconds: number } {
    const mountedOn = new Map<string, Set<string>>();
    for (const { report } of reports)
      for (const m of report.manifestations)
        if (m.status === 'mounted')
          mountedOn.set(m.dataset_id, (mountedOn.get(m.dataset_id) ?? new Set()).add(report.uuid));
    let n = 0;
    let oldest = now;
    const still = new Set<string>();
    for (const [id, d] of datasets) {
      if (d.deleted) continue;
      n++;
      if (mountedOn.get(id)?.has(d.primary) === true) continue;
      still.add(id);
      const from = since.get(id) ?? now;
      since.set(id, from);
      if (from < oldest) oldest = from;
    }
    for (const id of since.keys()) if (!still.has(id)) since.delete(id);
    return { datasets: n, converging: still.size, oldestSeconds: (now - oldest) / 1000 };
  }

  it('gives the same answers and keeps the same since map', () => {
    let seed = 7;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const nodes = [NODE_A, NODE_B, '33333333-3333-4333-8333-333333333333'];
    const ids = Array.from({ length: 12 }, (_, i) => `d${i}`);
    const since = new Map<string, number>();
    const expected = new Map<string, number>();
    let reports = nodes.map((uuid) => ({ report: nodeReport(uuid, { manifestations: [] }), lastSeen: 0 }));
    for (let step = 0; step < 200; step++) {
      const datasets = new Map(
        ids
          .filter(() => rand(5) > 0)
          .map((id) => [id, { primary: nodes[rand(3)] as string, deleted: rand(6) === 0 }] as const),
      );
      // Some reports change (new objects), the others are the same values as before (cached sets reused).
      reports = reports.map((r) =>
        rand(3) === 0
          ? {
              report: nodeReport(r.report.uuid, {
                manifestations: ids
                  .filter(() => rand(4) === 0)
                  .map((id) => ({
                    dataset_id: id,
                    blockdevice_id: 'b',
                    size: 1,
                    status: rand(3) === 0 ? ('attached' as const) : ('mounted' as const),
                  })),
              }),
              lastSeen: 0,
            }
          : r,
      );
      // Now and then a node appears twice (its entries merge).
      const sample = rand(10) === 0 ? [...reports, reports[0] as (typeof reports)[number]] : reports;
      const now = step * 1000;
      expect(convergence({ datasets }, sample, now, since)).toEqual(reference(datasets, sample, now, expected));
      expect([...since.entries()].sort()).toEqual([...expected.entries()].sort());
    }
  });
});

describe('control service metrics listener', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'flocker-metrics-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('counts requests by route template, times commits, samples the cluster, and is not ready while commits fail', async () => {
    const disk = new FakeFullDisk();
    const store = new FileConfigurationStore(dir, { openFile: disk.open });
    await store.commit(registerNode(await store.load(), { uuid: NODE_A, host: '10.0.0.1' }));
    const svc = await startOnLoopback({ store, metrics: { host: '127.0.0.1', port: 0 } });
    const scrape = async (): Promise<string> => (await fetch(`${svc.metricsUrl ?? ''}/metrics`)).text();
    const create = (name: string) =>
      fetch(`${svc.url}/v1/configuration/datasets`, {
        method: 'POST',
        body: JSON.stringify({ primary: NODE_A, metadata: { name } }),
      });
    try {
      expect(svc.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const before = value(await scrape(), 'flocker_store_commit_duration_seconds_count{result="ok"}') ?? 0;
      expect((await create('a')).status).toBe(201);
      const id = '00000000-0000-4000-8000-000000000000';
      expect((await fetch(`${svc.url}/v1/configuration/datasets/${id}`, { method: 'DELETE' })).status).toBe(404);
      await svc.state.report(nodeReport(NODE_A));
      let text = await scrape();
      expect(
        value(text, 'flocker_api_requests_total{method="POST",route="/v1/configuration/datasets",status="201"}'),
      ).toBeGreaterThanOrEqual(1);
      // The template, not the path with its id.
      expect(
        value(text, 'flocker_api_errors_total{route="/v1/configuration/datasets/:id",code="DATASET_NOT_FOUND"}'),
      ).toBeGreaterThanOrEqual(1);
      expect(text).not.toContain(id);
      expect(value(text, 'flocker_store_commit_duration_seconds_count{result="ok"}')).toBeGreaterThan(before);
      expect(value(text, 'flocker_datasets')).toBe(1);
      expect(value(text, 'flocker_datasets_converging')).toBe(1);
      expect(value(text, 'flocker_nodes{state="alive"}')).toBe(1);
      expect(value(text, 'flocker_store_size_bytes')).toBeGreaterThan(0);
      expect((await fetch(`${svc.metricsUrl ?? ''}/readyz`)).status).toBe(200);

      disk.free = 0;
      const failuresBefore = value(text, 'flocker_store_write_failures_total') ?? 0;
      expect((await create('b')).status).toBe(503);
      const ready = await fetch(`${svc.metricsUrl ?? ''}/readyz`);
      expect(ready.status).toBe(503);
      const body = (await ready.json()) as { failed: string[] };
      expect(body.failed).toEqual(['store']);
      text = await scrape();
      expect(value(text, 'flocker_store_write_failures_total')).toBe(failuresBefore + 1);

      disk.free = Infinity;
      expect((await create('c')).status).toBe(201);
      expect((await fetch(`${svc.metricsUrl ?? ''}/readyz`)).status).toBe(200);
      expect((await fetch(`${svc.metricsUrl ?? ''}/healthz`)).status).toBe(200);
    } finally {
      await svc.close();
    }
  });

  it("its metrics listener takes the service's --allowed-host names too (review s27 F5)", async () => {
    const svc = await startOnLoopback({ allowedHosts: ['control.dev.lan'], metrics: { host: '127.0.0.1', port: 0 } });
    try {
      const port = new URL(svc.metricsUrl ?? 'http://x:1').port;
      const url = svc.metricsUrl ?? '';
      expect((await sendRaw(url, 'GET', '/healthz', { host: `control.dev.lan:${port}` })).status).toBe(200);
      expect((await sendRaw(url, 'GET', '/healthz', { host: `evil.example:${port}` })).status).toBe(403);
    } finally {
      await svc.close();
    }
  });

  it('--metrics-check-host always: its metrics listener checks the Host on a network address too (review s28 G3)', async () => {
    // A port published from a container reaches the listener on the container's address, never loopback.
    const external = Object.values(networkInterfaces())
      .flat()
      .find((a) => a !== undefined && a.family === 'IPv4' && !a.internal)?.address;
    const host = external ?? '127.0.0.1';
    const svc = await startOnLoopback({
      allowedHosts: ['control.dev.lan'],
      metrics: { host, port: 0, checkHost: 'always' },
    });
    try {
      const url = svc.metricsUrl ?? '';
      expect((await sendRaw(url, 'GET', '/healthz', { host: 'evil.example' })).status).toBe(403);
      expect((await sendRaw(url, 'GET', '/healthz', { host: 'control.dev.lan' })).status).toBe(200);
      expect((await sendRaw(url, 'GET', '/healthz', { host: `${host}:4530` })).status).toBe(200);
    } finally {
      await svc.close();
    }
  });

  it('runs without metrics when their port is taken (the API matters more)', async () => {
    const first = await startOnLoopback({ metrics: { host: '127.0.0.1', port: 0 } });
    const port = Number(new URL(first.metricsUrl ?? 'http://x:1').port);
    const second = await startOnLoopback({ metrics: { host: '127.0.0.1', port } });
    try {
      expect(second.metricsUrl).toBeUndefined();
      expect((await fetch(`${second.url}/v1/version`)).status).toBe(200);
    } finally {
      await second.close();
      await first.close();
    }
  });
});
