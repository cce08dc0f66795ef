/**
 * Simulated dataset agents for the control-service benchmarks, in worker threads: real agents are
 * other machines, and thousands of answers parsed in the measuring thread would delay its own
 * requests, not the server's. Each agent reads its node's view once (as an agent does on start),
 * then long-polls it over a kept-alive connection and re-polls after every answer, retrying a
 * failed poll with a jittered exponential backoff (100 ms doubling to 10 s) as a real agent's
 * ClusterFollower does — a fixed 100 ms made thousands of refused agents a hot loop that loaded the
 * machine and distorted every figure. An agent talks to one control replica (its URL).
 * With `delta` each poll asks for a per-node delta (`delta=true`) and merges it into the view it
 * holds (applyClusterDelta), as an agent on the delta channel does.
 */
import { setMaxListeners } from 'node:events';
import { setPriority } from 'node:os';
import * as path from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import {
  applyClusterDelta,
  type ClusterSnapshot,
  createConnectionPool,
  FlockerApiError,
  FlockerClient,
  isClusterDelta,
} from '@flocker/api';
import { Backoff, errorMessage } from '@flocker/runtime';

/** The largest number that is not NaN; NaN when there is none. */
function maxOrNaN(xs: number[]): number {
  const ok = xs.filter((x) => !Number.isNaN(x));
  return ok.length === 0 ? NaN : Math.max(...ok);
}

export interface SimulatedAgent {
  node: string;
  /** The control replica this agent polls. */
  url: string;
}

interface AgentsInput {
  simulatedAgents: true;
  agents: SimulatedAgent[];
  keepAlive: boolean;
  delta: boolean;
  /** Each agent holds one streaming watch (`GET /v1/agent/cluster/watch`) instead of long-polling. */
  watch: boolean;
  fanoutDeadlineMs: number;
  /** The worker threads' nice value (see AgentFleet.nice). */
  nice: number;
}
/** `watch`: finish once these nodes have the change (plus a settle time to count who else woke); else once all have. */
type AgentsCommand =
  | { type: 'expect'; watch?: string[]; settleMs?: number }
  /** End the measurement now (when another worker's watched agents all have the change). */
  | { type: 'finish' }
  /** Run this worker thread at this nice value from now on. */
  | { type: 'nice'; value: number }
  /** Say how many polls or watches failed so far. */
  | { type: 'count' }
  | { type: 'stop' };
type AgentsMessage =
  | { type: 'started'; errors: number }
  | {
      type: 'fanout';
      reached: number;
      lastAt: number;
      watchedAt: number;
      errors: number;
      errorKinds: Record<string, number>;
      deltas: number;
      full: number;
    }
  | { type: 'count'; errors: number; errorKinds: Record<string, number> }
  | { type: 'stopped' };

export interface Fanout {
  /** Agents that got an answer with a new generation before the deadline (or the settle time, when watching). */
  reached: number;
  /** When the last of them got it (performance.timeOrigin-based epoch ms). */
  lastAt: number;
  /** When the last watched agent got it (NaN when not watching, or one missed it). */
  watchedAt: number;
  /** Answers that were deltas / full views since the agents started. */
  deltas: number;
  full: number;
  /** Failed polls (retried) since the agents started. */
  errors: number;
  /** The failed polls by what failed them (status and code, or the message with numbers blanked). */
  errorKinds: Record<string, number>;
}

/** The main thread's handle on the agents, spread over `workers` worker threads. */
export class AgentFleet {
  private stopping: Promise<void> | undefined;
  private constructor(private readonly workers: Worker[]) {}

  /** Starts the agents and resolves once every one has read its view and is long-polling. */
  static async start(
    agents: readonly SimulatedAgent[],
    options: {
      workers?: number;
      keepAlive?: boolean;
      delta?: boolean;
      watch?: boolean;
      fanoutDeadlineMs?: number;
      /** The agents' threads' nice value (0: the bench's own priority). */
      nice?: number;
    } = {},
  ): Promise<AgentFleet> {
    const n = Math.max(1, Math.min(options.workers ?? 1, agents.length));
    const workers = Array.from({ length: n }, (_, w) => {
      const input: AgentsInput = {
        simulatedAgents: true,
        agents: agents.filter((_, i) => i % n === w),
        keepAlive: options.keepAlive ?? true,
        delta: options.delta ?? false,
        watch: options.watch ?? false,
        fanoutDeadlineMs: options.fanoutDeadlineMs ?? 10_000,
        nice: options.nice ?? 0,
      };
      return new Worker(path.join(__dirname, 'agents.js'), { workerData: input });
    });
    const fleet = new AgentFleet(workers);
    await Promise.all(workers.map((w) => fleet.next(w, 'started')));
    return fleet;
  }

  private next(w: Worker, type: AgentsMessage['type']): Promise<AgentsMessage> {
    return new Promise((resolve, reject) => {
      const onMessage = (m: AgentsMessage): void => {
        if (m.type !== type) return;
        w.off('message', onMessage);
        w.off('error', reject);
        resolve(m);
      };
      w.on('message', onMessage);
      w.once('error', reject);
    });
  }

  /**
   * Arms the fan-out measurement (each agent notes the generation it holds), runs `change`, and
   * resolves when every agent had an answer with another generation, or at the deadline.
   */
  async fanout(change: () => Promise<void>, watch?: { nodes: string[]; settleMs: number }): Promise<Fanout> {
    const answers = this.workers.map((w) => this.next(w, 'fanout'));
    const expect: AgentsCommand =
      watch === undefined ? { type: 'expect' } : { type: 'expect', watch: watch.nodes, settleMs: watch.settleMs };
    for (const w of this.workers) w.postMessage(expect);
    await new Promise((r) => setTimeout(r, 50));
    await change();
    if (watch !== undefined) {
      // The worker holding the watched agents answers after its settle time; the others then count what they saw.
      await Promise.race(answers);
      for (const w of this.workers) w.postMessage({ type: 'finish' } satisfies AgentsCommand);
    }
    const all = (await Promise.all(answers)) as Extract<AgentsMessage, { type: 'fanout' }>[];
    const sum = (f: (m: (typeof all)[number]) => number): number => all.reduce((s, m) => s + f(m), 0);
    // A worker none of whose agents is watched says NaN: the watched ones are in the others.
    const watched = all.map((m) => m.watchedAt).filter((t) => !Number.isNaN(t));
    return {
      reached: sum((m) => m.reached),
      lastAt: maxOrNaN(all.map((m) => m.lastAt)),
      watchedAt: watch === undefined ? NaN : maxOrNaN(watched),
      errors: sum((m) => m.errors),
      errorKinds: all.reduce<Record<string, number>>((kinds, m) => {
        for (const [k, n] of Object.entries(m.errorKinds)) kinds[k] = (kinds[k] ?? 0) + n;
        return kinds;
      }, {}),
      deltas: sum((m) => m.deltas),
      full: sum((m) => m.full),
    };
  }

  /**
   * Runs the agents' worker threads at `value` (Linux: a thread's own nice value; raising it back needs
   * root). The simulated agents stand for agents on other machines: on the bench's 2 cores, reading
   * 10,000 heartbeat lines per period costs them as much CPU as the service's writing them, and at
   * the same priority they take it from the service (issue 23). Applied when each worker takes the message.
   */
  nice(value: number): void {
    for (const w of this.workers) w.postMessage({ type: 'nice', value } satisfies AgentsCommand);
  }

  /** Failed polls or watches (retried) since the agents started, by kind (errorKind). */
  async errors(): Promise<{ errors: number; errorKinds: Record<string, number> }> {
    const answers = this.workers.map((w) => this.next(w, 'count'));
    for (const w of this.workers) w.postMessage({ type: 'count' } satisfies AgentsCommand);
    const all = (await Promise.all(answers)) as Extract<AgentsMessage, { type: 'count' }>[];
    const errorKinds: Record<string, number> = {};
    for (const m of all) for (const [k, n] of Object.entries(m.errorKinds)) errorKinds[k] = (errorKinds[k] ?? 0) + n;
    return { errors: all.reduce((n, m) => n + m.errors, 0), errorKinds };
  }

  stop(): Promise<void> {
    this.stopping ??= this.stopWorkers();
    return this.stopping;
  }

  private async stopWorkers(): Promise<void> {
    const stopped = this.workers.map((w) => this.next(w, 'stopped'));
    for (const w of this.workers) w.postMessage({ type: 'stop' } satisfies AgentsCommand);
    // Agents stop after their poll in flight answers (at most its 30 s timeout); terminate does not wait for that.
    await Promise.race([Promise.all(stopped), new Promise((r) => setTimeout(r, 1000))]);
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/**
 * A failed poll's kind: the status and code, and for a failure at the connection (status 0) the
 * transport's own words (ECONNRESET, ECONNREFUSED, "other side closed", EADDRNOTAVAIL…), numbers blanked.
 */
export function errorKind(err: unknown): string {
  let kind = errorMessage(err);
  if (err instanceof FlockerApiError) {
    const cause = err.status === 0 ? err.description.replace(/^.*? failed: /, '') : '';
    kind = `${err.status} ${err.code}${cause === '' ? '' : `: ${cause}`}`;
  }
  return kind
    .replace(/[0-9a-f-]{36}/g, '<id>')
    .replace(/\d+(\.\d+)?/g, 'N')
    .slice(0, 160);
}

async function runAgents(input: AgentsInput): Promise<void> {
  const port = parentPort;
  if (port === null) throw new Error('runAgents runs in a worker');
  const count = input.agents.length;
  const pool = input.keepAlive ? undefined : createConnectionPool(count + 64);
  // Kept alive, each agent has its own one connection, as a real agent on its own machine does. Sharing
  // one pool, an agent re-polling before its last connection was released opened another: idle spares
  // piled up past --max-connections, and the server dropped the agents' new connections for a keep-alive
  // timeout (65 s).
  const dispatchers: ReturnType<typeof createConnectionPool>[] = [];
  const clientFor = (url: string): FlockerClient => {
    let dispatcher = pool;
    if (dispatcher === undefined) {
      dispatcher = createConnectionPool(1, { keepAlive: true });
      dispatchers.push(dispatcher);
    }
    return new FlockerClient({ baseUrl: url, dispatcher, timeoutMs: 60_000 });
  };
  let stop = false;
  let errors = 0;
  const errorKinds: Record<string, number> = {};
  let deltas = 0;
  let full = 0;
  /** Each agent's generation when the fan-out was armed; an agent is reached by an answer with another. */
  let armed: Map<string, string> | undefined;
  let seen = new Map<string, number>();
  let deadline: NodeJS.Timeout | undefined;
  /** The watched agents of this worker (undefined: all of them), and the settle time after they all have it. */
  let watch: { nodes: Set<string>; settleMs: number } | undefined;
  const current = new Map<string, string>();
  const finishFanout = (): void => {
    // Once per measurement: a settle timer after a 'finish' must not answer the next one.
    if (armed === undefined) return;
    if (deadline !== undefined) clearTimeout(deadline);
    deadline = undefined;
    armed = undefined;
    const lastAt = seen.size > 0 ? Math.max(...seen.values()) : NaN;
    let watchedAt = NaN;
    if (watch !== undefined && watch.nodes.size > 0) {
      const at = [...watch.nodes].map((n) => seen.get(n) ?? NaN);
      watchedAt = at.some((t) => Number.isNaN(t)) ? NaN : Math.max(...at);
    }
    watch = undefined;
    port.postMessage({
      type: 'fanout',
      reached: seen.size,
      lastAt,
      watchedAt,
      errors,
      errorKinds,
      deltas,
      full,
    } satisfies AgentsMessage);
  };
  const mine = new Set(input.agents.map((a) => a.node));
  /** Called after each newly reached agent: is the measurement over? */
  const check = (): void => {
    if (armed === undefined) return;
    if (watch === undefined) {
      if (seen.size === count) finishFanout();
    } else if ([...watch.nodes].every((n) => seen.has(n)) && deadline !== undefined) {
      // The watched ones have it: count who else wakes within the settle time, then answer.
      clearTimeout(deadline);
      deadline = undefined;
      setTimeout(finishFanout, watch.settleMs);
    }
  };
  const stopping = new AbortController();
  // Every agent's watch listens on it.
  setMaxListeners(0, stopping.signal);
  // Linux: 0 is the calling thread (this worker), not the whole process.
  if (input.nice !== 0) setPriority(0, input.nice);
  port.on('message', (m: AgentsCommand) => {
    if (m.type === 'nice') setPriority(0, m.value);
    else if (m.type === 'count') port.postMessage({ type: 'count', errors, errorKinds } satisfies AgentsMessage);
    else if (m.type === 'stop') {
      stop = true;
      stopping.abort();
    } else if (m.type === 'finish') finishFanout();
    else {
      seen = new Map();
      armed = new Map(current);
      watch =
        m.watch === undefined
          ? undefined
          : { nodes: new Set(m.watch.filter((n) => mine.has(n))), settleMs: m.settleMs ?? 0 };
      // A worker watching none of its agents counts who wakes until told to finish (or the deadline).
      deadline = setTimeout(finishFanout, input.fanoutDeadlineMs);
    }
  });
  let ready = 0;
  let signalled = false;
  const readyOne = (): void => {
    if (++ready === count && !signalled) {
      signalled = true;
      port.postMessage({ type: 'started', errors } satisfies AgentsMessage);
    }
  };
  const loops = input.agents.map(async ({ node, url }) => {
    const client = clientFor(url);
    let view: ClusterSnapshot | undefined;
    let first = true;
    const backoff = new Backoff({ initialMs: 100, maxMs: 10_000, jitter: true });
    /** An answer merged into the view: note when the armed measurement reached this agent. */
    const got = (next: ClusterSnapshot): void => {
      view = next;
      current.set(node, view.generation);
      const before = armed?.get(node);
      if (armed !== undefined && before !== undefined && view.generation !== before && !seen.has(node)) {
        seen.set(node, performance.timeOrigin + performance.now());
        check();
      }
      if (first) {
        first = false;
        readyOne();
      }
    };
    const failed = async (err: unknown): Promise<void> => {
      errors++;
      const kind = errorKind(err);
      errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
      await new Promise((r) => setTimeout(r, backoff.next()));
    };
    while (input.watch && !stop) {
      // One stream per agent; on a failure or a delta for another view, reconnect from the view held.
      try {
        for await (const answer of client.watchCluster(node, view?.generation, { signal: stopping.signal })) {
          backoff.reset();
          if (isClusterDelta(answer)) {
            deltas++;
            const merged = view !== undefined ? applyClusterDelta(view, answer) : undefined;
            if (merged === undefined) {
              view = undefined;
              break;
            }
            got(merged);
          } else {
            full++;
            got(answer);
          }
        }
      } catch (err) {
        await failed(err);
      }
    }
    while (!input.watch && !stop) {
      const gen = view?.generation;
      try {
        const wait = gen === undefined ? 0 : 30_000;
        if (input.delta) {
          const answer = await client.waitForClusterDelta(gen, wait, node);
          if (isClusterDelta(answer)) {
            deltas++;
            // A delta for another view than ours: read the whole view again, as an agent must.
            view =
              (view !== undefined ? applyClusterDelta(view, answer) : undefined) ??
              (await client.waitForCluster(undefined, 0, { node }));
          } else {
            full++;
            view = answer;
          }
        } else {
          view = await client.waitForCluster(gen, wait, { node });
          full++;
        }
      } catch (err) {
        await failed(err);
        continue;
      }
      backoff.reset();
      got(view);
    }
  });
  await Promise.allSettled(loops);
  const all = pool === undefined ? dispatchers : [pool, ...dispatchers];
  await Promise.all(all.map((d) => d.close().catch(() => undefined)));
  port.postMessage({ type: 'stopped' } satisfies AgentsMessage);
}

if (!isMainThread && (workerData as Partial<AgentsInput> | null)?.simulatedAgents === true) {
  void runAgents(workerData as AgentsInput);
}
