import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FlockerApiError, FlockerClient, parseControlUrls } from './client';
import { controlUrlsFromHosts } from './controlUrls';
import { emptyNodeReport } from './testing/nodeReport';

/** A server that answers, or cuts every connection after reading the request. */
async function server(
  behaviour: 'answer' | 'cut',
  hits: string[],
): Promise<{ url: string; close: () => Promise<void> }> {
  const srv: Server = createServer((req, res) => {
    hits.push(`${behaviour} ${req.method ?? ''} ${req.url ?? ''}`);
    if (behaviour === 'cut') {
      req.socket.destroy();
      return;
    }
    res.setHeader('content-type', 'application/json');
    if (req.url === '/v1/version') res.end(JSON.stringify({ flocker: '1.0.0' }));
    else res.end(JSON.stringify({ generation: 'g1' }));
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => srv.close(() => resolve())) };
}

async function closedPortUrl(): Promise<string> {
  const s = await server('answer', []);
  await s.close();
  return s.url;
}

const report = emptyNodeReport();

describe('FlockerClient failover between control replicas', () => {
  it('parses comma-separated URLs', () => {
    expect(parseControlUrls(' http://a:1/, http://b:2 ,,http://a:1')).toEqual(['http://a:1', 'http://b:2']);
  });

  it('a read goes to the next replica when the first refuses connections, and sticks to it', async () => {
    const hits: string[] = [];
    const good = await server('answer', hits);
    const dead = await closedPortUrl();
    const client = new FlockerClient({ baseUrl: `${dead},${good.url}`, timeoutMs: 2000 });
    expect((await client.version()).flocker).toBe('1.0.0');
    expect(client.controlUrls).toEqual([good.url, dead]);
    await client.version();
    expect(hits).toEqual(['answer GET /v1/version', 'answer GET /v1/version']);
    await good.close();
  });

  it('a write that never reached a replica (connection refused) is sent to the next', async () => {
    const hits: string[] = [];
    const good = await server('answer', hits);
    const client = new FlockerClient({ baseUrl: await closedPortUrl(), baseUrls: [good.url], timeoutMs: 2000 });
    expect(await client.reportNodeState(report)).toEqual({ generation: 'g1' });
    expect(hits).toHaveLength(1);
    await good.close();
  });

  it('a write cut off after it was sent is not repeated elsewhere (it may have been applied)', async () => {
    const hits: string[] = [];
    const cut = await server('cut', hits);
    const good = await server('answer', hits);
    const client = new FlockerClient({ baseUrl: `${cut.url},${good.url}`, timeoutMs: 2000 });
    const err: unknown = await client
      .createDataset({ primary: report.uuid, maximum_size: 1 << 26 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FlockerApiError);
    expect((err as FlockerApiError).code).toBe('CONTROL_SERVICE_UNREACHABLE');
    expect(hits).toEqual(['cut POST /v1/configuration/datasets']);
    // A read cut off the same way is simply asked again of the next replica.
    expect((await client.version()).flocker).toBe('1.0.0');
    await cut.close();
    await good.close();
  });

  it('a node report cut off after it was sent is sent to the next replica (a whole-state PUT is safe to repeat)', async () => {
    const hits: string[] = [];
    const cut = await server('cut', hits);
    const good = await server('answer', hits);
    const client = new FlockerClient({ baseUrl: `${cut.url},${good.url}`, timeoutMs: 2000 });
    expect(await client.reportNodeState(report)).toEqual({ generation: 'g1' });
    expect(hits).toEqual([`cut PUT /v1/agent/nodes/${report.uuid}`, `answer PUT /v1/agent/nodes/${report.uuid}`]);
    await cut.close();
    await good.close();
  });

  it('with every replica down the error names the last one tried', async () => {
    const a = await closedPortUrl();
    const b = await closedPortUrl();
    const err: unknown = await new FlockerClient({ baseUrl: `${a},${b}`, timeoutMs: 1000 })
      .version()
      .catch((e: unknown) => e);
    expect((err as FlockerApiError).code).toBe('CONTROL_SERVICE_UNREACHABLE');
    expect((err as FlockerApiError).message).toContain(b);
  });
});

describe('controlUrlsFromHosts', () => {
  it('builds the failover list from agent.yml hostname/port/hostnames', () => {
    expect(controlUrlsFromHosts('https', 'c1', 4523)).toBe('https://c1:4523');
    expect(controlUrlsFromHosts('http', 'c1', 4523, ['c2', 'c3:4600', '::1', '[fe80::1]:99', 'c1'])).toBe(
      'http://c1:4523,http://c2:4523,http://c3:4600,http://[::1]:4523,http://[fe80::1]:99',
    );
  });
});
