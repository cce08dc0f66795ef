/**
 * FlockerClient.watchCluster's idle timeout (issue 23) measures the server's silence, not the caller's time with a
 * line: while a line is parsed or handled nothing is read, and the server's heartbeats wait unread (undici's own
 * bodyTimeout does not run while the body is paused either). A plugin's first line is the whole cluster (~35 MB at
 * 100,000 datasets): parsed and merged on a loaded host it may take longer than 3 heartbeats (6 s).
 */
import { FlockerApiError, FlockerClient } from './client';
import { watchServer, watchView } from './testing/watchServer';

const NODE = '11111111-1111-4111-8111-111111111111';
/** Announces 50 ms heartbeats (idle after 150 ms); sends a view, then (when `live`) a heartbeat every 20 ms and the next view at 600 ms. */
function slowReaderServer(live: boolean): Promise<{ url: string; close: () => Promise<void> }> {
  return watchServer('application/x-ndjson; heartbeat-ms=50', (res) => {
    if (!live) return;
    const beat = setInterval(() => res.write('\n'), 20);
    const next = setTimeout(() => res.write(`${watchView('x.2.1')}\n`), 600);
    res.on('close', () => {
      clearInterval(beat);
      clearTimeout(next);
    });
  });
}

/** Reads two lines (or until it fails, or 3 s), handling the first with `handle`. */
async function read(
  url: string,
  handle: () => Promise<void> | void,
): Promise<{ generations: string[]; error?: FlockerApiError; at: number }> {
  const abort = new AbortController();
  const started = Date.now();
  const stop = setTimeout(() => abort.abort(), 3_000);
  const generations: string[] = [];
  try {
    for await (const answer of new FlockerClient({ baseUrl: url }).watchCluster(NODE, undefined, {
      signal: abort.signal,
    })) {
      generations.push(answer.generation);
      if (generations.length === 1) await handle();
      else abort.abort();
    }
    return { generations, at: Date.now() - started };
  } catch (e) {
    if (!(e instanceof FlockerApiError)) throw e;
    return { generations, error: e, at: Date.now() - started };
  } finally {
    clearTimeout(stop);
  }
}

/** Blocks the event loop (a big line parsed and merged). */
const busy = (ms: number): void => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
};

describe('FlockerClient.watchCluster: a slow reader is not a silent server', () => {
  it('a caller awaiting something for 3x the idle timeout with a line gets the next line, no WATCH_IDLE', async () => {
    const srv = await slowReaderServer(true);
    try {
      const r = await read(srv.url, () => new Promise((resolve) => setTimeout(resolve, 450)));
      expect(r.error).toBeUndefined();
      expect(r.generations).toEqual(['x.1.1', 'x.2.1']);
    } finally {
      await srv.close();
    }
  });

  it('a caller holding the event loop for 3x the idle timeout (a whole cluster merged) gets the next line, no WATCH_IDLE', async () => {
    const srv = await slowReaderServer(true);
    try {
      const r = await read(srv.url, () => busy(450));
      expect(r.error).toBeUndefined();
      expect(r.generations).toEqual(['x.1.1', 'x.2.1']);
    } finally {
      await srv.close();
    }
  });

  it('a server silent once the caller is back is still cut after the idle timeout (counted from then)', async () => {
    const srv = await slowReaderServer(false);
    try {
      const r = await read(srv.url, () => new Promise((resolve) => setTimeout(resolve, 450)));
      expect(r.generations).toEqual(['x.1.1']);
      expect(r.error?.code).toBe('WATCH_IDLE');
      expect(r.at).toBeGreaterThanOrEqual(450 + 150 - 10);
      expect(r.at).toBeLessThan(2_000);
    } finally {
      await srv.close();
    }
  });
});
