/**
 * Session 19 (FXC): an XMS request on a stalled connection must fail in bounded time and the next call work once
 * traffic passes. undici bounded connect (10 s), the headers and each gap in the body (request_timeout_seconds), but
 * not a body that trickles (one byte now and then): such a call never ended. Now request_timeout_seconds bounds each
 * request as a whole. The XtremIO simulator behind a TCP proxy that stalls on demand.
 */
import { STALL_CASES, startStallProxy, type StallProxy } from '../testing/stallProxy';
import { startSimulatedArray, type SimulatedArray } from './testing/harness';
import { XtremioDriver } from './XtremioDriver';

jest.setTimeout(120_000);

const REQUEST_TIMEOUT_S = 2;
const ATTEMPTS = 2;

let array: SimulatedArray;
let proxy: StallProxy;

beforeAll(async () => {
  array = await startSimulatedArray('stall');
  // One byte every 0.5 s: never idle for the timeout, never done within it.
  proxy = await startStallProxy(new URL(array.url), 500);
});

afterAll(async () => {
  await proxy?.close();
  await array?.cleanup();
});

it.each(STALL_CASES)(
  'a stalled XMS connection (%s: %s) fails the call in bounded time; it works once traffic passes',
  async (mode) => {
    const d = new XtremioDriver(
      await array.host(`stall-${mode}`, {
        xms_url: proxy.endpoint,
        request_timeout_seconds: REQUEST_TIMEOUT_S,
        request_attempts: ATTEMPTS,
      }),
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
      // Each attempt within the timeout, plus the retry's backoff (at most 8 s).
      expect(tookMs).toBeLessThan(ATTEMPTS * REQUEST_TIMEOUT_S * 1000 + 9_000);
      proxy.mode = 'pass';
      await expect(d.listVolumes()).resolves.toEqual([]);
    } finally {
      await d.close();
    }
  },
);
