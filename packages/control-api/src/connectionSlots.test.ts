/**
 * Connection slots held without being used (review T6, session 19).
 * F1: server.maxConnections is global and, at the limit, only idle keep-alive connections were closed to make room:
 * a connection yet to send its first request was kept until headersTimeout (with TLS the TCP connection counts
 * before the handshake, so no certificate is needed). A peer re-opening its silent connections as they were cut kept
 * every other client refused (measured: 13 of 20 attempts over 5 s).
 * F1b: an answer the client never reads was never cut (no limit applies once the answer has started).
 */
import { connect, type Socket } from 'node:net';
import { FlockerClient } from '@flocker/api';
import { hardConnectionLimit, silentVictim, writeStalled } from './connectionGuard';
import { NODE_A, nodeReport, startOnLoopback } from './testing/httpService';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('silent connections holding every slot (F1)', () => {
  it('a client still gets answers while one peer keeps the slots filled with connections that send nothing', async () => {
    const max = 20;
    const svc = await startOnLoopback({
      limits: { maxConnections: max, headersTimeoutMs: 1_000, checkIntervalMs: 200 },
    });
    const held = new Set<Socket>();
    let stop = false;
    // The peer: another address than the client's (127.0.0.2, loopback too).
    const hold = (): void => {
      if (stop) return;
      const s = connect({ port: svc.port, host: '127.0.0.1', localAddress: '127.0.0.2' });
      held.add(s);
      s.on('error', () => undefined);
      s.once('close', () => {
        held.delete(s);
        setImmediate(hold);
      });
    };
    try {
      for (let i = 0; i < 3 * max; i++) hold();
      await sleep(300);
      const client = new FlockerClient({ baseUrl: svc.url, timeoutMs: 3_000 });
      const outcomes: string[] = [];
      const until = Date.now() + 5_000;
      while (Date.now() < until) {
        outcomes.push(
          await client.version().then(
            () => 'answered',
            (e: unknown) => `refused: ${(e as Error).message.slice(0, 60)}`,
          ),
        );
        await sleep(250);
      }
      const refused = outcomes.filter((o) => o !== 'answered');
      expect({ refused, of: outcomes.length }).toEqual({ refused: [], of: outcomes.length });
    } finally {
      stop = true;
      for (const s of held) s.destroy();
      await svc.close();
    }
  }, 20_000);

  it('picks the oldest silent connection of the address holding the most, never the newcomer’s own', () => {
    const m = new Map<string, Set<string>>([
      ['peer', new Set(['p1', 'p2', 'p3'])],
      ['agent', new Set(['a1'])],
    ]);
    expect(silentVictim(m, 'agent')).toBe('p1');
    expect(silentVictim(m, 'other')).toBe('p1');
    // The peer's own newcomers are refused, not made room for.
    expect(silentVictim(m, 'peer')).toBeUndefined();
    // Two addresses with one silent connection each: nobody is a hog.
    expect(
      silentVictim(
        new Map([
          ['x', new Set(['x1'])],
          ['y', new Set(['y1'])],
        ]),
        'y',
      ),
    ).toBeUndefined();
    expect(silentVictim(new Map<string, Set<string>>(), 'y')).toBeUndefined();
    expect(hardConnectionLimit(10_000)).toBeGreaterThan(10_000);
  });
});

describe('answers the client never reads (F1b)', () => {
  it('judges progress by completed writes, not by bytes queued', () => {
    const p = { done: -1, at: 0 };
    expect(writeStalled(p, { bytesWritten: 100, writableLength: 50 }, 0, 1_000)).toBe(false);
    expect(writeStalled(p, { bytesWritten: 200, writableLength: 150 }, 900, 1_000)).toBe(false);
    expect(writeStalled(p, { bytesWritten: 300, writableLength: 250 }, 1_000, 1_000)).toBe(true);
    // A written chunk is progress; an empty queue (a long-poll waiting) is never a stall.
    expect(writeStalled(p, { bytesWritten: 300, writableLength: 200 }, 1_500, 1_000)).toBe(false);
    expect(writeStalled(p, { bytesWritten: 300, writableLength: 0 }, 9_000, 1_000)).toBe(false);
  });

  it('closes a connection whose big answer is not read for the stall bound; a reading client gets it all', async () => {
    const svc = await startOnLoopback({ limits: { writeStallMs: 1_000, checkIntervalMs: 100 } });
    try {
      const client = new FlockerClient({ baseUrl: svc.url });
      await client.reportNodeState(nodeReport(NODE_A));
      // ~9 MB of datasets: more than loopback's socket buffers take from a client that does not read.
      const metadata = Object.fromEntries(Array.from({ length: 16 }, (_, k) => [`k${k}`, 'x'.repeat(250)]));
      for (let b = 0; b < 20; b++) {
        await Promise.all(Array.from({ length: 100 }, () => client.createDataset({ primary: NODE_A, metadata })));
      }
      const paused: Socket[] = [];
      for (let i = 0; i < 3; i++) {
        const s = connect(svc.port, '127.0.0.1');
        s.on('error', () => undefined);
        s.write('GET /v1/configuration/datasets HTTP/1.1\r\nHost: localhost\r\n\r\n');
        s.pause();
        paused.push(s);
      }
      // Meanwhile a client that reads gets the whole list.
      const size = JSON.stringify(await client.listDatasets()).length;
      expect(size).toBeGreaterThan(8_000_000);
      await sleep(2_500);
      // A paused socket sees its connection's end only once it reads again: then it ends, short of the answer.
      const outcomes = await Promise.all(
        paused.map(
          (s) =>
            new Promise<string>((resolve) => {
              let bytes = 0;
              s.on('data', (c: Buffer) => (bytes += c.length));
              const timer = setTimeout(() => resolve(`open after ${bytes} bytes`), 5_000);
              s.once('close', () => {
                clearTimeout(timer);
                resolve(bytes < size ? 'cut' : `closed after ${bytes} bytes`);
              });
              s.resume();
            }),
        ),
      );
      for (const s of paused) s.destroy();
      expect(outcomes).toEqual(['cut', 'cut', 'cut']);
    } finally {
      await svc.close();
    }
  }, 60_000);
});
