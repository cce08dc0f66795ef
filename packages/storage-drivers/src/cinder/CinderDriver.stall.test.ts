/**
 * Session 19 (FXC): a Cinder request on a stalled connection must fail in bounded time and the next call work
 * once traffic passes. undici bounded connect (10 s), the headers and each gap in the body (60 s, fixed), but not a
 * body that trickles (one byte now and then): such a call never ended. Now request_timeout_seconds bounds each
 * request as a whole. Real Cinder (noauth) behind a TCP proxy that stalls on demand.
 */
import { randomUUID } from 'node:crypto';
import { STALL_CASES, startStallProxy, type StallProxy } from '../testing/stallProxy';
import { CinderDriver } from './CinderDriver';
import { startTestCinder, type TestCinder } from './testCinder';

jest.setTimeout(10 * 60 * 1000);

const PROJECT = 'f10cce7a5e7d4c8b9f1a2b3c4d5e6f70';
const REQUEST_TIMEOUT_S = 2;
const ATTEMPTS = 2;

let cinder: TestCinder;
let proxy: StallProxy;

beforeAll(async () => {
  cinder = await startTestCinder('noauth');
  // One byte every 0.5 s: never idle for the timeout, never done within it.
  proxy = await startStallProxy(new URL(cinder.url), 500);
});

afterAll(async () => {
  await proxy?.close();
  await cinder?.purge();
});

it.each(STALL_CASES)(
  'a stalled Cinder connection (%s: %s) fails the call in bounded time; it works once traffic passes',
  async (mode) => {
    const d = new CinderDriver(
      {
        backend: 'openstack',
        auth_plugin: 'noauth',
        cinder_url: `${proxy.endpoint}${new URL(cinder.url).pathname}`,
        project_id: PROJECT,
        cluster_id: randomUUID(),
        instance_id: 'flocker-stall-host',
        attach_mode: 'cinder',
        request_timeout_seconds: REQUEST_TIMEOUT_S,
      },
      { retry: { attempts: ATTEMPTS, baseDelayMs: 10, maxDelayMs: 50 } },
    );
    try {
      proxy.mode = 'pass';
      await expect(d.listVolumes()).resolves.toEqual([]);
      proxy.mode = mode;
      const started = Date.now();
      const outcome = await d.listVolumes().then(
        () => 'answered',
        (e: unknown) => e,
      );
      const tookMs = Date.now() - started;
      expect(outcome).toMatchObject({ code: 'BACKEND_ERROR', message: expect.stringMatching(/timed out|timeout/i) });
      expect(tookMs).toBeLessThan(ATTEMPTS * REQUEST_TIMEOUT_S * 1000 + 2_000);
      proxy.mode = 'pass';
      await expect(d.listVolumes()).resolves.toEqual([]);
    } finally {
      await d.close();
    }
  },
);
