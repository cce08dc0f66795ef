/**
 * Test support (import only from tests): a TCP proxy in front of a backend's HTTP API that can stall a
 * connection the way a black-holed endpoint or a proxy holding requests does, to check that every driver
 * call is bounded. Modes, for connections accepted from the switch on:
 * - pass: bytes flow both ways;
 * - holdRequest: the connection is accepted and nothing is ever answered (no status line);
 * - holdBody: the request is passed on, the answer's status line and headers come back, then its body stops;
 * - dripBody: like holdBody, then the rest of the body one byte every dripMs (never idle long, never done soon).
 */
import * as net from 'node:net';

export type StallMode = 'pass' | 'holdRequest' | 'holdBody' | 'dripBody';

/** The three ways a connection stalls, each with its description: the cases of every driver's stall test. */
export const STALL_CASES: readonly [StallMode, string][] = [
  ['holdRequest', 'no answer at all'],
  ['holdBody', 'the headers come, then the body stops'],
  ['dripBody', 'the headers come, then the body trickles'],
];

export interface StallProxy {
  /** http://127.0.0.1:<port> */
  readonly endpoint: string;
  mode: StallMode;
  /** Connections accepted so far (each stalled one counts). */
  readonly accepted: () => number;
  close(): Promise<void>;
}

/** Starts the proxy to `target` (host:port of a URL); mode 'pass' until changed. */
export async function startStallProxy(target: URL, dripMs = 500): Promise<StallProxy> {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const track = (s: net.Socket): void => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
  };
  const state: { mode: StallMode } = { mode: 'pass' };
  const server = net.createServer((client) => {
    accepted++;
    track(client);
    const mode = state.mode;
    if (mode === 'holdRequest') return; // taken, never read, never answered
    const upstream = net.connect(Number(target.port), target.hostname);
    track(upstream);
    client.on('close', () => upstream.destroy());
    client.pipe(upstream);
    if (mode === 'pass') {
      upstream.on('error', () => client.destroy());
      upstream.on('close', () => client.destroy());
      upstream.pipe(client);
      return;
    }
    // holdBody: pass the head and a few bytes of the body, then nothing more; the client's connection stays open
    // even when the server closes its own after answering.
    let seen = Buffer.alloc(0);
    let sent = -1; // bytes of `seen` written to the client, once the head is complete
    let timer: NodeJS.Timeout | undefined;
    const drip = (): void => {
      if (client.destroyed || sent >= seen.length) return;
      client.write(seen.subarray(sent, sent + 1));
      sent++;
      timer = setTimeout(drip, dripMs);
    };
    client.on('close', () => clearTimeout(timer));
    upstream.on('data', (chunk: Buffer) => {
      seen = Buffer.concat([seen, chunk]);
      if (sent >= 0) return;
      const end = seen.indexOf('\r\n\r\n');
      if (end < 0) return;
      sent = Math.min(end + 4 + 8, seen.length);
      client.write(seen.subarray(0, sent));
      if (mode === 'dripBody') timer = setTimeout(drip, dripMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('stall proxy has no port');
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    get mode() {
      return state.mode;
    },
    set mode(m: StallMode) {
      state.mode = m;
      // Kept-alive connections too: every request from now on sees the new mode.
      for (const s of sockets) s.destroy();
    },
    accepted: () => accepted,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
