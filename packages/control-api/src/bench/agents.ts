/**
 * Simulated dataset agents for the control-service benchmarks, in worker threads: real agents are
 * other machines, and thousands of answers parsed in the measuring thread would delay its own
 * requests, not the server's. Each agent reads its node's view once (as an agent does on start),
 * then long-polls it over a kept-alive connection and re-polls after every answer, retrying a
 * failed poll after 100 ms as a real agent does. An agent talks to one control replica (its URL).
 */
import * as path from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { createConnectionPool, FlockerClient } from '@flocker/api';

export interface SimulatedAgent {
  node: string;
  /** The control replica this agent polls. */
  url: string;
}

interface AgentsInput {
  simulatedAgents: true;
  agents: SimulatedAgent[];
  keepAlive: boolean;
  fanoutDeadlineMs: number;
}
type AgentsCommand = { type: 'expect' } | { type: 'stop' };
type AgentsMessage =
  | { type: 'started'; errors: number }
  | { type: 'fanout'; reached: number; lastAt: number; errors: number }
  | { type: 'stopped' };

export interface Fanout {
  /** Agents that got an answer with a new generation before the deadline. */
  reached: number;
  /** When the last of them got it (performance.timeOrigin-based epoch ms). */
  lastAt: number;
  /** Failed polls (retried) since the agents started. */
  errors: number;
}

/** The main thread's handle on the agents, spread over `workers` worker threads. */
export class AgentFleet {
  private stopping: Promise<void> | undefined;
  private constructor(private readonly workers: Worker[]) {}

  /** Starts the agents and resolves once every one has read its view and is long-polling. */
  static async start(
    agents: readonly SimulatedAgent[],
    options: { workers?: number; keepAlive?: boolean; fanoutDeadlineMs?: number } = {},
  ): Promise<AgentFleet> {
    const n = Math.max(1, Math.min(options.workers ?? 1, agents.length));
    const workers = Array.from({ length: n }, (_, w) => {
      const input: AgentsInput = {
        simulatedAgents: true,
        agents: agents.filter((_, i) => i % n === w),
        keepAlive: options.keepAlive ?? true,
        fanoutDeadlineMs: options.fanoutDeadlineMs ?? 10_000,
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
  async fanout(change: () => Promise<void>): Promise<Fanout> {
    const answers = this.workers.map((w) => this.next(w, 'fanout'));
    for (const w of this.workers) w.postMessage({ type: 'expect' } satisfies AgentsCommand);
    await new Promise((r) => setTimeout(r, 50));
    await change();
    const all = (await Promise.all(answers)) as Extract<AgentsMessage, { type: 'fanout' }>[];
    return {
      reached: all.reduce((s, m) => s + m.reached, 0),
      lastAt: Math.max(...all.map((m) => m.lastAt)),
      errors: all.reduce((s, m) => s + m.errors, 0),
    };
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

async function runAgents(input: AgentsInput): Promise<void> {
  const port = parentPort;
  if (port === null) throw new Error('runAgents runs in a worker');
  const count = input.agents.length;
  const pool = input.keepAlive ? undefined : createConnectionPool(count + 64);
  const clients = new Map<string, FlockerClient>();
  const clientFor = (url: string): FlockerClient => {
    let c = clients.get(url);
    if (c === undefined) {
      c = new FlockerClient({ baseUrl: url, ...(pool !== undefined ? { dispatcher: pool } : {}), timeoutMs: 60_000 });
      clients.set(url, c);
    }
    return c;
  };
  let stop = false;
  let errors = 0;
  /** Each agent's generation when the fan-out was armed; an agent is reached by an answer with another. */
  let armed: Map<string, string> | undefined;
  let seen = new Map<string, number>();
  let deadline: NodeJS.Timeout | undefined;
  const current = new Map<string, string>();
  const finishFanout = (): void => {
    if (deadline !== undefined) clearTimeout(deadline);
    deadline = undefined;
    armed = undefined;
    const lastAt = seen.size > 0 ? Math.max(...seen.values()) : NaN;
    port.postMessage({ type: 'fanout', reached: seen.size, lastAt, errors } satisfies AgentsMessage);
  };
  port.on('message', (m: AgentsCommand) => {
    if (m.type === 'stop') stop = true;
    else {
      seen = new Map();
      armed = new Map(current);
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
    let gen: string | undefined;
    let first = true;
    while (!stop) {
      let snap: Awaited<ReturnType<typeof client.waitForCluster>>;
      try {
        snap = await client.waitForCluster(gen, gen === undefined ? 0 : 30_000, { node });
      } catch {
        errors++;
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      gen = snap.generation;
      current.set(node, gen);
      const before = armed?.get(node);
      if (armed !== undefined && before !== undefined && gen !== before && !seen.has(node)) {
        seen.set(node, performance.timeOrigin + performance.now());
        if (seen.size === count) finishFanout();
      }
      if (first) {
        first = false;
        readyOne();
      }
    }
  });
  await Promise.allSettled(loops);
  await pool?.close().catch(() => undefined);
  port.postMessage({ type: 'stopped' } satisfies AgentsMessage);
}

if (!isMainThread && (workerData as Partial<AgentsInput> | null)?.simulatedAgents === true) {
  void runAgents(workerData as AgentsInput);
}
