/**
 * Session 19 (FXC): an EC2 request on a stalled connection (a proxy that holds requests, a black-holed endpoint)
 * never ended: @smithy/node-http-handler 4.x only logs a warning at requestTimeout unless throwOnRequestTimeout is
 * set, and nothing bounded a response body that stops half way (its socket timeout defaults to 15 min). An agent
 * whose EC2 connection stalled then never converged, even after the network came back. Now every EC2 request is
 * bounded by timing.requestTimeoutMs (connect, headers and body) and fails with BACKEND_ERROR; the next call works
 * once the connection passes traffic again. EC2 side: moto behind a TCP proxy that stalls on demand.
 */
import { EbsDriver } from './EbsDriver';
import {
  motoClient,
  motoConfig,
  noDevice,
  runInstances,
  startMoto,
  type MotoServer,
  FAST_EBS_TIMING,
} from './motoSupport';
import { STALL_CASES, startStallProxy, type StallProxy } from '../testing/stallProxy';

jest.setTimeout(120_000);

const REQUEST_TIMEOUT_MS = 2_000;

let moto: MotoServer;
let proxy: StallProxy;
let instance: string;

beforeAll(async () => {
  moto = await startMoto();
  proxy = await startStallProxy(new URL(moto.endpoint));
  const raw = motoClient(moto.endpoint);
  try {
    [instance] = await runInstances(raw, 1);
  } finally {
    raw.destroy();
  }
});

afterAll(async () => {
  await proxy?.close();
  await moto?.stop();
});

function driverThroughProxy(): EbsDriver {
  return new EbsDriver({
    // No injected client: the one the agent builds from agent.yml.
    config: {
      ...motoConfig(moto, instance),
      endpoint: proxy.endpoint,
      access_key_id: 'testing',
      secret_access_key: 'testing',
    },
    host: noDevice,
    timing: { ...FAST_EBS_TIMING, maxAttempts: 2, requestTimeoutMs: REQUEST_TIMEOUT_MS },
  });
}

it.each(STALL_CASES)(
  'a stalled EC2 connection (%s: %s) fails the call in bounded time; it works once traffic passes',
  async (mode) => {
    const d = driverThroughProxy();
    proxy.mode = 'pass';
    await d.listVolumes(); // the connection works
    proxy.mode = mode;
    const started = Date.now();
    const outcome = await d.listVolumes().then(
      () => 'answered',
      (e: unknown) => e,
    );
    const tookMs = Date.now() - started;
    expect(outcome).toMatchObject({
      code: 'BACKEND_ERROR',
      message: expect.stringMatching(/timed out|exceeded the configured/),
    });
    // Two attempts of at most REQUEST_TIMEOUT_MS each, plus the retry's short backoff.
    expect(tookMs).toBeLessThan(2 * REQUEST_TIMEOUT_MS + 2_000);
    proxy.mode = 'pass';
    await expect(d.listVolumes()).resolves.toEqual([]);
  },
);
