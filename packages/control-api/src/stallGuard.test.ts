import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { CLIENT_WAIT_HEADER, FlockerClient } from '@flocker/api';
import { childServer } from '@flocker/runtime/testing';
import {
  checkWrite,
  DEFAULT_STALL_GUARD,
  initialStallState,
  observe,
  refuseWritesAfterStall,
  StallGuard,
  type StallState,
  tick,
} from './stallGuard';
import { NODE_A, nodeReport, silentLogger, startOnLoopback } from './testing/httpService';
import type { ControlService } from './server';

const O = DEFAULT_STALL_GUARD; // tick 100, threshold 500, window 500
const D1 = '11111111-1111-4111-8111-111111111111';
const D2 = '22222222-2222-4222-8222-222222222222';

/** A client still waiting sends its write again: applied once the window has passed; the refused one (D1) never. */
async function appliedAfterWindow(client: FlockerClient): Promise<void> {
  await eventually('a write after the window', () =>
    client.createDataset({ primary: NODE_A, dataset_id: D2 }).then(
      (d) => d,
      (err: { code?: string }) => {
        if (err.code !== 'REPLICA_STALLED') throw err;
        return undefined;
      },
    ),
  );
  const ids = (await client.listDatasets()).map((d) => d.dataset_id);
  expect(ids).toContain(D2);
  expect(ids).not.toContain(D1);
}

describe('stall decisions (pure)', () => {
  const at = (lastTickAt: number, refuseUntil = -Infinity): StallState => ({
    lastTickAt,
    refuseUntil,
    stalledMs: 0,
    stalls: 0,
    countedAfter: -Infinity,
  });

  it('a tick on time, or late by up to the threshold, is no stall', () => {
    expect(tick(at(0), 100, O)).toEqual({ state: { ...at(100) } });
    expect(tick(at(0), 600, O)).toEqual({ state: { ...at(600) } });
    expect(tick(initialStallState(5), 605, O).stalledMs).toBeUndefined();
  });

  it('a tick later than a period plus the threshold ends a stall and opens the window', () => {
    expect(tick(at(0), 601, O)).toEqual({
      state: { lastTickAt: 601, refuseUntil: 1101, stalledMs: 501, stalls: 1, countedAfter: 0 },
      stalledMs: 501,
    });
    expect(tick(at(1000), 31_100, O).stalledMs).toBe(30_000);
  });

  it('a write read while the tick is overdue is refused, and so is every write of the window after it', () => {
    const first = checkWrite(at(0), 700, O);
    expect(first.stalledMs).toBe(600);
    expect(first.state.refuseUntil).toBe(1200);
    // The late tick of the same stall comes after the requests: it keeps the window open.
    const late = tick(first.state, 701, O);
    expect(checkWrite(late.state, 1000, O).stalledMs).toBe(601);
    expect(checkWrite(late.state, 1200, O).stalledMs).toBe(601);
    expect(checkWrite(late.state, 1201, O).stalledMs).toBeUndefined();
  });

  it('a stall is counted once, whether a write, its late tick or a look (observe) sees it first (review S26B B1)', () => {
    // Seen by a write, then by another look and the late tick: one stall.
    const byWrite = checkWrite(at(0), 700, O).state;
    expect(byWrite.stalls).toBe(1);
    const looked = observe(byWrite, 701, O);
    expect(looked.stalledMs).toBe(601);
    const late = tick(looked.state, 702, O).state;
    expect(late.stalls).toBe(1);
    // Seen by a look first (an etcd answer's callback before the tick), then by the tick: one.
    expect(tick(observe(at(0), 700, O).state, 701, O).state.stalls).toBe(1);
    // Ticks on time count nothing; the next stall counts again.
    const onTime = tick(tick(late, 800, O).state, 900, O).state;
    expect(onTime.stalls).toBe(1);
    expect(observe(onTime, 1400, O)).toEqual({ state: onTime });
    expect(tick(onTime, 2000, O).state.stalls).toBe(2);
  });

  it('without a stall no write is refused', () => {
    for (const now of [0, 1, 100, 599, 600]) expect(checkWrite(at(0), now, O)).toEqual({ state: at(0) });
    expect(checkWrite(at(0, 50), 50, O).stalledMs).toBeUndefined();
  });

  it('a stopped guard refuses nothing', () => {
    let now = 0;
    const guard = new StallGuard(() => now, silentLogger);
    now = 10_000;
    expect(guard.refusesWrite()).toBeUndefined();
  });

  it('only writes go through the guard', () => {
    const asked: string[] = [];
    const guard = { refusesWrite: () => void asked.push('asked'), mark: () => ({}) } as unknown as StallGuard;
    const mw = refuseWritesAfterStall(guard);
    for (const method of ['GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'PATCH', 'DELETE']) {
      let passed = false;
      mw({ method, get: () => undefined } as never, {} as never, () => (passed = true));
      expect(passed).toBe(true);
    }
    expect(asked).toHaveLength(4);
  });
});

/** A raw HTTP/1.1 request's whole answer (the socket is connected already). */
function answerOn(socket: net.Socket): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', reject);
    socket.on('end', () => {
      const text = Buffer.concat(chunks).toString();
      resolve({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1]), body: text.slice(text.indexOf('\r\n\r\n') + 4) });
    });
  });
}

function request(method: string, target: string, body?: unknown, extra = ''): string {
  const json = body === undefined ? '' : JSON.stringify(body);
  return (
    `${method} ${target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\n` +
    `${extra}Content-Length: ${Buffer.byteLength(json)}\r\n\r\n${json}`
  );
}

/** A connection the service has accepted and answered once (keep-alive): what a client holds between requests. */
async function warmConnection(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.once('data', () => resolve());
    socket.write('GET /v1/version HTTP/1.1\r\nHost: localhost\r\n\r\n');
  });
  return socket;
}

/** Blocks this thread (and its event loop) for `ms`: a stall without burning CPU. */
function blockLoop(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

async function eventually<T>(what: string, f: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  for (const deadline = Date.now() + ms; ;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('a write read right after the event loop stalled (in process: the loop blocked)', () => {
  let svc: ControlService;
  let client: FlockerClient;
  beforeEach(async () => {
    svc = await startOnLoopback({ stallGuard: true });
    client = new FlockerClient({ baseUrl: svc.url, timeoutMs: 20_000 });
    await client.reportNodeState(nodeReport(NODE_A));
  });
  afterEach(() => svc.close());

  it('is refused 503 REPLICA_STALLED and not applied; a read of the same turn is answered; a write after the window is applied', async () => {
    const writer = await warmConnection(svc.port);
    const reader = await warmConnection(svc.port);
    const wrote = answerOn(writer);
    const read = answerOn(reader);
    // Both requests reach the kernel now; the service reads them only once the loop runs again.
    writer.write(request('POST', '/v1/configuration/datasets', { primary: NODE_A, dataset_id: D1 }));
    reader.write(request('GET', '/v1/configuration/datasets'));
    blockLoop(O.tickMs + O.thresholdMs + 600);
    const refused = await wrote;
    expect(refused.status).toBe(503);
    expect(JSON.parse(refused.body)).toMatchObject({
      code: 'REPLICA_STALLED',
      description: expect.stringMatching(/not applied/),
    });
    expect((await read).status).toBe(200);
    await appliedAfterWindow(client);
  });

  it('is applied when its client said it waits longer than the stall could have made it wait (x-flocker-client-wait-ms; review s27 F9)', async () => {
    const waits = await warmConnection(svc.port);
    const short = await warmConnection(svc.port);
    const waited = answerOn(waits);
    const refused = answerOn(short);
    const post = (id: string, waitMs: number) =>
      request(
        'POST',
        '/v1/configuration/datasets',
        { primary: NODE_A, dataset_id: id },
        `${CLIENT_WAIT_HEADER}: ${waitMs}\r\n`,
      );
    waits.write(post(D1, 20_000));
    short.write(post(D2, 1_000));
    blockLoop(O.tickMs + O.thresholdMs + 600);
    expect((await waited).status).toBe(201);
    expect((await refused).status).toBe(503);
    const ids = (await client.listDatasets()).map((d) => d.dataset_id);
    expect(ids).toContain(D1);
    expect(ids).not.toContain(D2);
  });

  it('a block shorter than the threshold refuses nothing', async () => {
    const writer = await warmConnection(svc.port);
    const wrote = answerOn(writer);
    writer.write(request('POST', '/v1/configuration/datasets', { primary: NODE_A, dataset_id: D1 }));
    // A fifth of the threshold: the rest is margin for a loaded worker's own scheduling delays (review S26B B5).
    blockLoop(O.thresholdMs / 5);
    expect((await wrote).status).toBe(201);
  });
});

// The control service in a child process, SIGSTOPped with a write sent on a new connection (as a client opens one).
const CHILD = `
const { startOnLoopback } = require(process.argv[1]);
startOnLoopback({ stallGuard: true }).then((s) => console.log('port ' + s.port));
`;

describe('a write sent to a SIGSTOPped control service', () => {
  let proc: ChildProcess | undefined;
  afterEach(() => {
    proc?.kill('SIGCONT');
    proc?.kill('SIGKILL');
  });

  it('is refused REPLICA_STALLED when it resumes, and not applied; a read is answered; a later write is applied', async () => {
    const child = await childServer(CHILD, [path.join(__dirname, 'testing', 'httpService.js')], () => undefined);
    proc = child.proc;
    const client = new FlockerClient({ baseUrl: child.url, timeoutMs: 20_000 });
    await client.reportNodeState(nodeReport(NODE_A));
    const port = Number(new URL(child.url).port);
    child.proc.kill('SIGSTOP');
    // Sent whole to the kernel (the handshake needs nothing of the stopped process), then the client waits.
    const send = (method: string, target: string, body?: unknown) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port, method, path: target, agent: false }, (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        });
        req.on('error', reject);
        req.setHeader('content-type', 'application/json');
        req.end(body === undefined ? undefined : JSON.stringify(body));
      });
    const wrote = send('POST', '/v1/configuration/datasets', { primary: NODE_A, dataset_id: D1 });
    const read = send('GET', '/v1/configuration/datasets');
    // Stopped for longer than the threshold (a fixed stall to make, not a wait for a result).
    await new Promise((r) => setTimeout(r, O.tickMs + O.thresholdMs + 900));
    child.proc.kill('SIGCONT');
    const refused = await wrote;
    expect(refused.status).toBe(503);
    expect(JSON.parse(refused.body)).toMatchObject({ code: 'REPLICA_STALLED' });
    expect((await read).status).toBe(200);
    await appliedAfterWindow(client);
  }, 60_000);
});
