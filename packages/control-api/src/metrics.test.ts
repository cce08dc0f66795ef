/**
 * The control service's metrics and health listener through HTTP: API requests by route template and status,
 * store commits, the cluster gauges, and /readyz failing by name while the store cannot be written.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { FakeFullDisk } from '@flocker/api/testing';
import { FileConfigurationStore } from './ConfigurationStore';
import { registerNode } from './configuration';
import { convergence } from './metrics';
import { NODE_A, NODE_B, nodeReport, startOnLoopback } from './testing/httpService';

/** The value of one series in a Prometheus text exposition. */
function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

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
