/**
 * Errors meet HTTP in one place (httpErrors.ts): the configuration logic and the stores
 * throw codes without statuses; a ZodError from the server's own data is a 500, not a
 * 400 blaming the client; a bad flag of flocker-control is no HTTP error at all.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { z } from 'zod';
import { FlockerApiError, FlockerClient } from '@flocker/api';
import { ConfigurationError, invalidRequest, StoreError, UsageError } from './errors';
import { HTTP_STATUS, toApiError } from './httpErrors';
import { type ControlService } from './server';
import { controlArgv } from './testing/controlProcess';
import { startOnLoopback } from './testing/httpService';

describe('the mapping of errors to HTTP', () => {
  it('a ZodError reaching the boundary came from the server itself: 500 INTERNAL_ERROR', () => {
    const own = z.object({ flocker: z.string() }).safeParse({ flocker: 1 });
    expect(own.success).toBe(false);
    const mapped = toApiError(own.error);
    expect({ status: mapped.status, code: mapped.code }).toEqual({ status: 500, code: 'INTERNAL_ERROR' });
  });

  it('input refused by a route schema is the client fault: 400 INVALID_REQUEST with each problem', () => {
    const input = z.object({ primary: z.string() }).strict().safeParse({ colour: 'red' });
    const mapped = toApiError(invalidRequest(input.error as z.ZodError));
    expect(mapped.status).toBe(400);
    expect(mapped.code).toBe('INVALID_REQUEST');
    expect(mapped.errors?.length).toBe(2);
  });

  it('every code of the configuration logic and the stores has its status in one table', () => {
    expect(toApiError(new ConfigurationError('LEASE_HELD', 'held')).status).toBe(409);
    expect(toApiError(new StoreError('STORE_CORRUPT', 'damaged')).status).toBe(500);
    expect(toApiError(new StoreError('STORE_FULL', 'full')).status).toBe(503);
    expect(Object.values(HTTP_STATUS).every((s) => s >= 400 && s < 600)).toBe(true);
  });

  it('a usage error (a bad flag) is never answered as a client error', () => {
    expect(toApiError(new UsageError('INVALID_NODE_TIMEOUT', 'bad flag')).status).toBe(500);
  });
});

describe('over HTTP', () => {
  let svc: ControlService;
  beforeEach(async () => {
    svc = await startOnLoopback();
  });
  afterEach(async () => svc.close());

  it('a response the server builds off its own schema is a 500, not a 400 blaming the client', async () => {
    jest
      .spyOn(svc.state, 'listEvents')
      .mockReturnValue([
        { time: 'now', kind: 'node_dead', message: 7 } as unknown as ReturnType<typeof svc.state.listEvents>[number],
      ]);
    const client = new FlockerClient({ baseUrl: svc.url, timeoutMs: 5000 });
    const err = await client.listEvents().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FlockerApiError);
    expect({ status: (err as FlockerApiError).status, code: (err as FlockerApiError).code }).toEqual({
      status: 500,
      code: 'INTERNAL_ERROR',
    });
  });

  it('a refusal marked retryable is answered with its Retry-After; the same code without the mark, none (review s28 G5)', async () => {
    const client = new FlockerClient({ baseUrl: svc.url, timeoutMs: 5000 });
    const spy = jest.spyOn(svc.state, 'listEvents').mockImplementation(() => {
      throw new ConfigurationError('LEASE_HELD', 'held; retry once its holder reports', undefined, 1);
    });
    const marked = await fetch(`${svc.url}/v1/state/events`);
    expect(marked.status).toBe(409);
    expect(marked.headers.get('retry-after')).toBe('1');
    expect(((await marked.json()) as { code: string }).code).toBe('LEASE_HELD');
    await expect(client.listEvents()).rejects.toMatchObject({ code: 'LEASE_HELD', retryAfterMs: 1_000 });
    spy.mockImplementation(() => {
      throw new ConfigurationError('LEASE_HELD', 'held');
    });
    const plain = await fetch(`${svc.url}/v1/state/events`);
    await plain.text();
    expect(plain.status).toBe(409);
    expect(plain.headers.get('retry-after')).toBeNull();
  });

  it('a lease asked for 1e308 seconds is refused as input (400), not stored and then failing its own answer (500)', async () => {
    const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
    const report = {
      uuid: A,
      era: 'e',
      host: '10.0.0.1',
      instance_id: 'i-a',
      backend: 'loopback',
      manifestations: [],
      errors: [],
    };
    const client = new FlockerClient({ baseUrl: svc.url, timeoutMs: 5000 });
    await client.reportNodeState(report);
    const ds = await client.createDataset({ primary: A });
    const res = await fetch(`${svc.url}/v1/configuration/leases`, {
      method: 'POST',
      body: JSON.stringify({ dataset_id: ds.dataset_id, node_uuid: A, expires: 1e308 }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { code: string }).code).toBe('INVALID_REQUEST');
    expect(await client.listLeases()).toEqual([]);
  });
});

describe('flocker-control with a bad flag', () => {
  function run(args: string[]): Promise<{ code: number | null; stderr: string }> {
    const dir = mkdtempSync(path.join(tmpdir(), 'flocker-flags-'));
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, controlArgv(dir, ...args), {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.on('error', reject);
      child.on('close', (code) => {
        rmSync(dir, { recursive: true, force: true });
        resolve({ code, stderr });
      });
    });
  }

  it.each([
    [['--node-timeout', '0'], 'INVALID_NODE_TIMEOUT', /--node-timeout must be a positive number/],
    [['--store', 'etcd'], 'BAD_ETCD_ENDPOINT', /--store etcd needs --etcd-endpoints/],
  ])('%j fails to start with its code, and says nothing of HTTP', async (args, code, message) => {
    const out = await run(args);
    expect(out.code).toBe(1);
    const line = JSON.parse(out.stderr.trim().split('\n').at(-1) as string) as { code: string; error: string };
    expect(line.code).toBe(code);
    expect(line.error).toMatch(message);
    expect(line.error).not.toMatch(/ApiError|HTTP/);
  });
});
