/**
 * The control service's connection slots against clients that hold them without using them (review T6, session 19):
 * - at the limit, room is made for a newcomer: keep-alive connections idle after an answer are closed (issue 23), or
 *   else the oldest silent connection (no request yet; with TLS, no finished handshake: no certificate needed) of the
 *   address holding the most silent ones, when that is not the newcomer's address. One peer re-opening silent
 *   connections as fast as they are cut no longer keeps every other client out (F1); its own newcomers are refused.
 * - an answer whose bytes make no progress for limits.writeStallMs (a client that stopped reading) has its connection
 *   closed: before, it held its slot and its buffers for ever (F1b). Progress is bytes the kernel took, so an unread
 *   watch is seen only once the peer's window and the send buffer are full: hours to days for heartbeats (review
 *   FR19-8). It then holds a slot and kernel buffers, as a watch read slowly does; Node exposes no unacknowledged
 *   byte count (TCP_USER_TIMEOUT, SIOCOUTQ) to do better without a protocol change.
 */
import type { Server, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'winston';

export interface GuardLimits {
  readonly maxConnections: number;
  readonly writeStallMs: number;
  readonly checkIntervalMs: number;
}

/** Connections Node itself refuses beyond the limit (it drops them before any listener sees them): a few spare
 * above maxConnections so a newcomer can be seen and room made for it; a refused newcomer is closed at once. */
export function hardConnectionLimit(maxConnections: number): number {
  return maxConnections + Math.max(8, Math.ceil(maxConnections / 64));
}

/**
 * Which silent connection makes room for a newcomer from `newcomer`: the oldest of the address holding the most
 * silent connections, if that address is not the newcomer's and holds more than the newcomer's (counting it).
 * Pure: `silentByAddress` lists each address's silent connections oldest first.
 */
export function silentVictim<S>(silentByAddress: ReadonlyMap<string, ReadonlySet<S>>, newcomer: string): S | undefined {
  const own = silentByAddress.get(newcomer)?.size ?? 0;
  let hog: ReadonlySet<S> | undefined;
  let hogAddress: string | undefined;
  for (const [address, set] of silentByAddress) {
    if (hog === undefined || set.size > hog.size) {
      hog = set;
      hogAddress = address;
    }
  }
  if (hog === undefined || hogAddress === newcomer || hog.size <= own) return undefined;
  return hog.values().next().value;
}

/** Whether an answer's connection made no progress for the stall bound: bytes still queued and none written since. */
export interface WriteProgress {
  done: number;
  at: number;
}
export function writeStalled(
  p: WriteProgress,
  socket: { readonly bytesWritten: number; readonly writableLength: number },
  now: number,
  stallMs: number,
): boolean {
  const pending = socket.writableLength;
  // Bytes whose write completed: bytesWritten counts the queued ones too.
  const done = socket.bytesWritten - pending;
  if (pending === 0 || done !== p.done) {
    p.done = done;
    p.at = now;
    return false;
  }
  return now - p.at >= stallMs;
}

/** The raw TCP socket under a TLS one (net's `_parent`), or the socket itself. */
function rawOf(socket: Socket): Socket {
  return (socket as Socket & { _parent?: Socket | null })._parent ?? socket;
}

export function guardConnections(
  server: Server,
  limits: GuardLimits,
  monoNow: () => number,
  logger: Logger,
): { stop(): void } {
  server.maxConnections = hardConnectionLimit(limits.maxConnections);
  const open = new Set<Socket>();
  const silent = new Map<string, Set<Socket>>();
  const silentAddress = new Map<Socket, string>();
  const speak = (raw: Socket): void => {
    const address = silentAddress.get(raw);
    if (address === undefined) return;
    silentAddress.delete(raw);
    const set = silent.get(address);
    set?.delete(raw);
    if (set?.size === 0) silent.delete(address);
  };
  const forget = (raw: Socket): void => {
    open.delete(raw);
    speak(raw);
  };

  // Keep-alive connections idle after an answer (a client's spares between requests): closed at the limit, or they
  // would refuse every new client until their keep-alive timeout. A long-poll in progress is kept.
  const idleAfterAnswer = new Set<Socket>();
  const answering = new Map<Socket, WriteProgress>();
  server.on('request', (req: IncomingMessage, res) => {
    const socket = req.socket;
    speak(rawOf(socket));
    idleAfterAnswer.delete(socket);
    if (!answering.has(socket)) {
      answering.set(socket, { done: -1, at: monoNow() });
      socket.once('close', () => {
        idleAfterAnswer.delete(socket);
        answering.delete(socket);
      });
    }
    res.once('finish', () => {
      if (!socket.destroyed) idleAfterAnswer.add(socket);
    });
  });
  // With TLS a finished handshake is the first sign of a client (it needed the cluster's certificate).
  server.on('secureConnection', (tlsSocket: Socket) => speak(rawOf(tlsSocket)));

  // Monotonic: after a wall-clock step back the idle connections would stay open at the limit until it caught up.
  let lastIdleClose = -Infinity;
  const closeIdle = (): boolean => {
    const now = monoNow();
    if (now - lastIdleClose < 1000 || idleAfterAnswer.size === 0) return false;
    lastIdleClose = now;
    logger.warn('connection limit reached: closing idle keep-alive connections', {
      max_connections: limits.maxConnections,
      idle: idleAfterAnswer.size,
    });
    for (const socket of idleAfterAnswer) socket.destroy();
    idleAfterAnswer.clear();
    return true;
  };
  let refusedSince = 0;
  let evictedSince = 0;
  server.on('connection', (raw: Socket) => {
    const address = raw.remoteAddress ?? '';
    open.add(raw);
    silentAddress.set(raw, address);
    const set = silent.get(address);
    if (set === undefined) silent.set(address, new Set([raw]));
    else set.add(raw);
    raw.once('close', () => forget(raw));
    if (open.size <= limits.maxConnections) return;
    if (closeIdle()) return;
    const victim = silentVictim(silent, address);
    if (victim !== undefined) {
      evictedSince++;
      forget(victim);
      victim.destroy();
      return;
    }
    refusedSince++;
    forget(raw);
    raw.destroy();
  });
  // Beyond the hard limit Node drops the connection unseen: idle ones still make room for the next attempt.
  server.on('drop', () => void closeIdle());

  const sweepMs = Math.max(50, Math.min(limits.checkIntervalMs, limits.writeStallMs / 4));
  const timer = setInterval(() => {
    const now = monoNow();
    let stalled = 0;
    for (const [socket, progress] of answering) {
      if (socket.destroyed || !writeStalled(progress, socket, now, limits.writeStallMs)) continue;
      stalled++;
      answering.delete(socket);
      socket.destroy();
    }
    if (stalled > 0)
      logger.warn('closed connections whose answers made no progress (the client stopped reading)', {
        connections: stalled,
        write_stall_ms: limits.writeStallMs,
      });
    if (refusedSince + evictedSince > 0) {
      logger.warn('connection limit reached: silent connections closed or refused', {
        max_connections: limits.maxConnections,
        silent_closed: evictedSince,
        refused: refusedSince,
      });
      refusedSince = 0;
      evictedSince = 0;
    }
  }, sweepMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
