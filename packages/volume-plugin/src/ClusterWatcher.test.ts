import type { ClusterSnapshot } from '@flocker/api';
import * as winston from 'winston';
import { ClusterWatcher, WaitAbortedError, WaitTimeoutError } from './ClusterWatcher';

const logger = winston.createLogger({ silent: true, transports: [new winston.transports.Console()] });
const snap = (generation: string): ClusterSnapshot => ({
  generation,
  configuration_tag: 't',
  datasets: [],
  leases: [],
  nodes: [],
});

/** A control service stand-in: long-polls hold until `publish`. */
function fakeServer() {
  let gen = 0;
  let calls = 0;
  const waiting: Array<() => void> = [];
  return {
    get calls() {
      return calls;
    },
    publish() {
      gen++;
      for (const w of waiting.splice(0)) w();
    },
    fetch: async (since?: string, timeoutMs = 0): Promise<ClusterSnapshot> => {
      calls++;
      if (since === String(gen) && timeoutMs > 0) {
        await new Promise<void>((r) => {
          const t = setTimeout(r, timeoutMs);
          waiting.push(() => {
            clearTimeout(t);
            r();
          });
        });
      }
      return snap(String(gen));
    },
  };
}

describe('ClusterWatcher', () => {
  it('a wait whose signal aborts rejects with WaitAbortedError and leaves no waiter behind (issue 23)', async () => {
    const server = fakeServer();
    const w = new ClusterWatcher(server.fetch, logger, 10_000);
    w.start();
    await w.first;
    const ac = new AbortController();
    const wait = w.waitFor(() => undefined, 60_000, ac.signal);
    expect(w['waiters'].size).toBe(1);
    ac.abort();
    await expect(wait).rejects.toBeInstanceOf(WaitAbortedError);
    expect(w['waiters'].size).toBe(0);
    // Aborted before it starts: at once.
    await expect(w.waitFor(() => undefined, 60_000, ac.signal)).rejects.toBeInstanceOf(WaitAbortedError);
    expect(w['waiters'].size).toBe(0);
    await w.close();
    server.publish();
  });

  it('tells snapshot listeners of every snapshot (long-poll and refresh); a failing listener harms no other', async () => {
    const server = fakeServer();
    const w = new ClusterWatcher(server.fetch, logger, 10_000);
    const seen: string[] = [];
    w.onSnapshot(() => {
      throw new Error('listener bug');
    });
    const stop = w.onSnapshot((s) => seen.push(s.generation));
    w.start();
    await w.first;
    server.publish();
    await w.waitFor((s) => (s.generation === '1' ? true : undefined), 5_000);
    await w.refresh();
    stop();
    await w.refresh();
    await w.close();
    server.publish();
    expect(seen).toEqual(['0', '1', '1']);
  });

  it('wakes waiters on the next snapshot, not on a timer', async () => {
    const server = fakeServer();
    const w = new ClusterWatcher(server.fetch, logger, 10_000);
    w.start();
    await w.first;
    const waiting = w.waitFor((s) => (s.generation === '1' ? 'seen' : undefined), 5_000);
    await new Promise((r) => setTimeout(r, 50));
    const calls = server.calls;
    server.publish();
    await expect(waiting).resolves.toBe('seen');
    expect(server.calls - calls).toBeLessThanOrEqual(2);
    await w.close();
    server.publish();
  });

  it('resolves at once when the current snapshot already satisfies, and times out otherwise', async () => {
    const server = fakeServer();
    const w = new ClusterWatcher(server.fetch, logger, 10_000);
    await w.refresh();
    await expect(w.waitFor((s) => s.generation, 10)).resolves.toBe('0');
    await expect(w.waitFor(() => undefined, 50)).rejects.toBeInstanceOf(WaitTimeoutError);
  });

  it('does not spin against a server that answers an unchanged snapshot at once', async () => {
    let calls = 0;
    const w = new ClusterWatcher(
      async () => {
        calls++;
        return snap('same');
      },
      logger,
      1_000,
      1_000,
    );
    w.start();
    await new Promise((r) => setTimeout(r, 300));
    await w.close();
    expect(calls).toBeLessThan(10);
  });

  it('followed() gives the snapshot only while the long-poll answers', async () => {
    let up = true;
    const w = new ClusterWatcher(
      async (since) => {
        if (!up) throw new Error('ECONNREFUSED');
        if (since !== undefined) await new Promise((r) => setTimeout(r, 20));
        return snap('1');
      },
      logger,
      1_000,
      20,
    );
    try {
      await w.refresh();
      expect(w.followed()).toBeUndefined(); // a refresh alone does not follow
      w.start();
      await new Promise((r) => setTimeout(r, 50)); // a long-poll (20 ms) has answered
      expect(w.followed()).toMatchObject({ generation: '1' });
      up = false;
      await new Promise((r) => setTimeout(r, 60));
      expect(w.followed()).toBeUndefined();
      expect(w.current()).toMatchObject({ generation: '1' });
    } finally {
      await w.close();
    }
  });

  it('keeps retrying while the control service is down', async () => {
    let up = false;
    const w = new ClusterWatcher(
      async () => {
        if (!up) throw new Error('ECONNREFUSED');
        return snap('1');
      },
      logger,
      1_000,
      20,
    );
    w.start();
    setTimeout(() => (up = true), 100);
    await expect(w.first).resolves.toMatchObject({ generation: '1' });
    await w.close();
  });
});
