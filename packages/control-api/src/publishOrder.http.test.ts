/**
 * Over HTTP on a durable file store (issue 23, session 12): a configuration write's answer goes out before any
 * follower is woken (the whole-cluster long-polls the Docker plugins and waiters hold, and the agents' streaming
 * watch), and a read sent after the answer sees the write. The commit's bookkeeping (node views, noted moves, lease
 * and snapshot timers) runs before the answer, in the same turn, so nothing read after it can miss the write; the
 * wake-ups (ChangeNotifier.notify) run on a later turn, after the answer was written. Every answer is written by
 * ServerResponse.end, and every watch line by a write onto its socket (streamSink: straight to the socket, or through
 * ServerResponse.write), synchronously, so the order of those calls is the order the bytes leave.
 */
import { ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import type { FlockerClient } from '@flocker/api';
import type { ControlService } from './server';
import {
  closeAndRemove,
  configurationVersionOf,
  NODE_A,
  NODE_B,
  startWithTwoNodes,
  type WatchReader,
  watchReader,
} from './testing/httpService';

interface Written {
  readonly what: string;
  readonly kind: 'end' | 'write';
}

type Writer = (this: ServerResponse, ...args: unknown[]) => unknown;
const proto = ServerResponse.prototype as unknown as { end: Writer; write: Writer; flushHeaders: Writer };
const originalEnd = proto.end;
const originalWrite = proto.write;
const originalFlushHeaders = proto.flushHeaders;
type SocketWriter = (this: Socket, ...args: unknown[]) => unknown;
const socketProto = Socket.prototype as unknown as { write: SocketWriter };
const originalSocketWrite = socketProto.write;
const written: Written[] = [];
/** The watches' sockets (a streamed answer flushes its headers first), to see the lines written straight to them. */
const streamOf = new WeakMap<Socket, ServerResponse>();
/** Inside ServerResponse.write or end: their own socket writes are theirs, already counted. */
let inResponse = false;
/** The watch's heartbeat (one newline) is not a change: as a line, or as the HTTP chunk it goes out as. */
const isBeat = (chunk: unknown): boolean =>
  (typeof chunk === 'string' || Buffer.isBuffer(chunk)) && ['\n', '1\r\n\n\r\n'].includes(chunk.toString());

/** Method and path; "(since)" for a request holding a generation (a long-poll, not the reads below). */
function what(res: ServerResponse): string {
  const url = res.req.url ?? '';
  return `${res.req.method ?? '?'} ${url.split('?')[0] ?? ''}${url.includes('since=') ? ' (since)' : ''}`;
}

/** Runs a ServerResponse method with its socket writes not counted again. */
function own(res: ServerResponse, method: Writer, args: unknown[]): unknown {
  const outer = inResponse;
  inResponse = true;
  try {
    return method.apply(res, args);
  } finally {
    inResponse = outer;
  }
}

beforeAll(() => {
  proto.end = function (this: ServerResponse, ...args: unknown[]) {
    written.push({ what: what(this), kind: 'end' });
    return own(this, originalEnd, args);
  };
  proto.write = function (this: ServerResponse, ...args: unknown[]) {
    if (!isBeat(args[0])) written.push({ what: what(this), kind: 'write' });
    return own(this, originalWrite, args);
  };
  proto.flushHeaders = function (this: ServerResponse, ...args: unknown[]) {
    if (this.socket !== null) streamOf.set(this.socket, this);
    return own(this, originalFlushHeaders, args);
  };
  socketProto.write = function (this: Socket, ...args: unknown[]) {
    const res = streamOf.get(this);
    if (res !== undefined && !inResponse && !isBeat(args[0])) written.push({ what: what(res), kind: 'write' });
    return originalSocketWrite.apply(this, args);
  };
});

afterAll(() => {
  proto.end = originalEnd;
  proto.write = originalWrite;
  proto.flushHeaders = originalFlushHeaders;
  socketProto.write = originalSocketWrite;
});

const LONG_POLL = 'GET /v1/agent/cluster (since)';
const WATCH = 'GET /v1/agent/cluster/watch';

/** Resolves once the service holds `n` waiters (long-polls and watches). */
async function waiters(svc: ControlService, n: number): Promise<void> {
  for (let i = 0; svc.state.waiting < n; i++) {
    if (i > 500) throw new Error(`${svc.state.waiting} waiters, expected ${n}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

describe('a write is answered before its followers are woken', () => {
  let svc: ControlService;
  let client: FlockerClient;
  let dir: string;
  let watchA: WatchReader;

  beforeAll(async () => {
    ({ svc, client, dir } = await startWithTwoNodes('flocker-publish-order-'));
    watchA = watchReader(client, NODE_A);
    await watchA.next();
  });

  afterAll(async () => {
    watchA.close();
    await closeAndRemove(svc, dir);
  });

  /**
   * Runs `write` with two whole-cluster long-polls and node A's watch waiting, then `read` at once after its answer;
   * checks the write's answer was written before every follower's answer or line, and that both long-polls and the
   * watch were woken by it.
   */
  async function ordered<T>(label: string, write: () => Promise<T>, read: (answer: T) => Promise<void>): Promise<T> {
    const before = await configurationVersionOf(client);
    const base = svc.state.waiting;
    const since = svc.state.generation;
    const polls = [client.waitForCluster(since, 10_000), client.waitForCluster(since, 10_000)];
    await waiters(svc, base + 2);
    const line = watchA.next();
    written.length = 0;
    const answer = await write();
    await read(answer);
    expect(await configurationVersionOf(client)).toBe(before + 1);
    const [p1, p2] = await Promise.all(polls);
    expect(p1?.generation).not.toBe(since);
    expect(p2?.generation).not.toBe(since);
    await line;
    const order = written.map((w) => `${w.kind} ${w.what}`);
    const answered = order.indexOf(`end ${label}`);
    expect(answered).toBeGreaterThanOrEqual(0);
    const followers = order
      .map((w, i) => ({ w, i }))
      .filter(({ w }) => w === `end ${LONG_POLL}` || w === `write ${WATCH}`);
    // Both long-poll answers and at least one watch line, all after the write's answer.
    expect(followers.filter(({ w }) => w.startsWith('end')).length).toBe(2);
    expect(followers.some(({ w }) => w.startsWith('write'))).toBe(true);
    expect(followers.filter(({ i }) => i < answered).map(({ w }) => w)).toEqual([]);
    return answer;
  }

  it('for a create, a move, a lease taken and released, and a delete of a dataset', async () => {
    const created = await ordered(
      'POST /v1/configuration/datasets',
      () => client.createDataset({ primary: NODE_A, maximum_size: 1024 * 1024 * 1024 }),
      async (d) => expect((await client.getDataset(d.dataset_id)).primary).toBe(NODE_A),
    );
    const id = created.dataset_id;
    const path = `/v1/configuration/datasets/${id}`;
    await ordered(
      `POST ${path}`,
      () => client.updateDataset(id, { primary: NODE_B }),
      async () => expect((await client.getDataset(id)).primary).toBe(NODE_B),
    );
    await ordered(
      `POST ${path}`,
      () => client.updateDataset(id, { primary: NODE_A }),
      async () => expect((await client.getDataset(id)).primary).toBe(NODE_A),
    );
    await ordered(
      'POST /v1/configuration/leases',
      () => client.acquireLease({ dataset_id: id, node_uuid: NODE_A, expires: null }),
      async () => expect((await client.listLeases()).map((l) => l.dataset_id)).toContain(id),
    );
    await ordered(
      `DELETE /v1/configuration/leases/${id}`,
      () => client.releaseLease(id),
      async () => expect((await client.listLeases()).map((l) => l.dataset_id)).not.toContain(id),
    );
    await ordered(
      `DELETE ${path}`,
      () => client.deleteDataset(id),
      async () => expect((await client.listDatasets()).find((d) => d.dataset_id === id)?.deleted).toBe(true),
    );
  });
});
