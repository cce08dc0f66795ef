/**
 * Review S26B B2 (on be38822): a replica that did not run for longer than the node timeout (SIGSTOP, a paused VM, a
 * long GC) judged every node on that time at its first liveness tick after it: the reports sent meanwhile were still
 * in its sockets and, on etcd, the stall guard refuses them for a moment (REPLICA_STALLED), so every node was declared
 * dead (and, past T + G, would lose its leases). The liveness timer now measures its own lateness on the real clock: a
 * tick more than a second late counts every node as heard (as after a store outage, FR19-10) and judges no one.
 */
import winston from 'winston';
import { MemoryConfigurationStore } from './ConfigurationStore';
import { ControlState } from './ControlState';
import { A, letterReport as report } from './testing/fixtures';

const T = 1_000;

/** Blocks this process's event loop (what a SIGSTOP does to the replica's timers). */
function blockLoop(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    /* busy */
  }
}

describe("a replica's liveness after its own stall", () => {
  let state: ControlState | undefined;
  afterEach(async () => {
    await state?.close();
    state = undefined;
  });

  async function open(): Promise<ControlState> {
    state = await ControlState.open({
      store: new MemoryConfigurationStore(),
      nodeTimeoutMs: T,
      leaseGraceMs: 60_000,
      logger: winston.createLogger({ silent: true }),
      livenessCheckMs: 100,
    });
    // As startControlService once it listens: the liveness timer runs from then (review s27 F8).
    state.serving();
    await state.report(report(A));
    return state;
  }

  it('a stall longer than the node timeout declares no node dead', async () => {
    const s = await open();
    blockLoop(T + 600);
    await new Promise((r) => setTimeout(r, 300));
    expect(s.deadSince(A)).toBeUndefined();
  });

  it('a node unheard for the node timeout without a stall is declared dead, as before', async () => {
    const s = await open();
    const deadline = Date.now() + 10 * T;
    while (s.deadSince(A) === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(s.deadSince(A)).toBeDefined();
  });
});
