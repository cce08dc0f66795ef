/**
 * The scale bench's --probe (issue 23): around a series of timed creates, where the machine's time went —
 * the control services' own account (bench/serverProbe, armed and disarmed by SIGUSR2), the CPU each
 * process used (the services, the etcd members, the bench with its simulated agents, the whole machine)
 * and etcd's fsync / backend-commit / peer round-trip histograms. Linux only (/proc).
 */
import type { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** What --probe watches: the control services (serverProbe armed by SIGUSR2) and the etcd members' metrics. */
export interface Probed {
  servers: ChildProcess[];
  etcd: string[];
  /** The etcd members' data directory (their processes are found by it). */
  etcdDir?: string;
}

/** CPU time (ms) a process used so far, all its threads (/proc/<pid>/stat utime + stime); NaN when gone. */
function cpuMsOf(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
  } catch {
    return NaN;
  }
}

/** The machine's busy CPU time (ms, all CPUs) so far, from /proc/stat. */
function machineBusyMs(): number {
  const f = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  return ((f.reduce((a, b) => a + b, 0) - idle) * 1000) / 100;
}

/** The pids of processes whose command line holds `needle`. */
function pidsWith(needle: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(needle)) out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** CPU ms used by the servers, the etcd members, this process (agents included) and the machine. */
function cpuSnapshot(probed: Probed): Record<string, number> {
  const etcdPids = probed.etcdDir === undefined ? [] : pidsWith(probed.etcdDir).filter((p) => p !== process.pid);
  const c = process.cpuUsage();
  return {
    ...Object.fromEntries(probed.servers.map((s, i) => [`server${i}`, cpuMsOf(s.pid as number)])),
    etcd: etcdPids.reduce((n, p) => n + cpuMsOf(p), 0),
    bench: (c.user + c.system) / 1000,
    machine: machineBusyMs(),
  };
}

/**
 * `read(tid)` for each thread of a process (/proc/<pid>/task), by "<comm> <tid>"; the main thread is "<comm> main".
 * A process or thread gone meanwhile is skipped.
 */
function perThread<T>(pid: number, read: (tid: string) => { comm: string; value: T }): Map<string, T> {
  const out = new Map<string, T>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const { comm, value } = read(tid);
      out.set(`${comm} ${Number(tid) === pid ? 'main' : tid}`, value);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** CPU ms per thread of a process so far (/proc/<pid>/task/<tid>/stat), by "<comm> <tid>"; the main thread is "<comm> main". */
function threadCpuMs(pid: number): Map<string, number> {
  return perThread(pid, (tid) => {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const f = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
    return { comm, value: ((Number(f[11]) + Number(f[12])) * 1000) / 100 };
  });
}

/**
 * With nothing asked of the services for `ms`: the CPU each process (and each of its busy threads)
 * used, and, every `stepMs`, the servers' and this process's CPU — what the agents' watches cost
 * idle (the heartbeat ticks), and who pays it: the service writing, or the simulated agents (this
 * process's worker threads) reading. Logged; nothing returned.
 */
export async function idleCpu(probed: Probed, ms: number, log: (msg: string) => void, stepMs = 100): Promise<void> {
  const pids = {
    ...Object.fromEntries(probed.servers.map((s, i) => [`server${i}`, s.pid as number])),
    bench: process.pid,
  };
  const threads0 = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, threadCpuMs(pid)]));
  const cpu0 = cpuSnapshot(probed);
  const steps: string[] = [];
  let last = cpuSnapshot(probed);
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    await new Promise((r) => setTimeout(r, stepMs));
    const now = cpuSnapshot(probed);
    const d = (k: string): number => Math.round((now[k] ?? 0) - (last[k] ?? 0));
    steps.push(
      `${Math.round(performance.now() - t0)}:${probed.servers.map((_, i) => d(`server${i}`)).join('+')}/${d('bench')}/${d('machine')}`,
    );
    last = now;
  }
  const cpu1 = cpuSnapshot(probed);
  const used = Object.fromEntries(Object.entries(cpu1).map(([k, v]) => [k, Math.round(v - (cpu0[k] ?? 0))]));
  log(`idle ${ms} ms (agents watching, no requests): CPU ms used ${JSON.stringify(used)}`);
  for (const [k, pid] of Object.entries(pids)) {
    const before = threads0[k] ?? new Map<string, number>();
    const busy = [...threadCpuMs(pid)]
      .map(([t, v]) => [t, Math.round(v - (before.get(t) ?? 0))] as const)
      .filter(([, v]) => v > 0)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 8);
    log(`idle: ${k} (pid ${pid}) threads' CPU ms: ${busy.map(([t, v]) => `${t}=${v}`).join(', ')}`);
  }
  log(`idle: every ${stepMs} ms, ms since start: servers' CPU ms / bench (agents) / machine: ${steps.join(' ')}`);
}

/** Per thread of a process so far: CPU time and run-queue wait (ms, /proc/<pid>/task/<tid>/schedstat, ns exact), by "<comm> <tid>". */
function threadSched(pid: number): Map<string, { cpu: number; wait: number }> {
  return perThread(pid, (tid) => {
    const comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
    const [cpu, wait] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ').map(Number);
    return { comm, value: { cpu: (cpu ?? NaN) / 1e6, wait: (wait ?? NaN) / 1e6 } };
  });
}

/**
 * Around one fan-out (--probe): the CPU time and run-queue wait of each busy thread of the services and of this
 * process (its main thread measures; its worker threads are the simulated agents), and the machine's busy time —
 * whether the fan-out's time is the service's work, the simulated agents' reading, or a wait for one of the 2 CPUs.
 */
export function threadsWindow(probed: Probed): { end: () => string } {
  // The etcd members too: on 2 cores their CPU (a commit's raft and fsync, the watches' events) competes with the
  // fan-out's writing and the agents' reading.
  const etcdPids = probed.etcdDir === undefined ? [] : pidsWith(probed.etcdDir).filter((p) => p !== process.pid);
  const pids: Record<string, number> = {
    ...Object.fromEntries(probed.servers.map((s, i) => [`server${i}`, s.pid as number])),
    ...Object.fromEntries(etcdPids.map((pid, i) => [`etcd${i}`, pid])),
    bench: process.pid,
  };
  const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, threadSched(pid)]));
  const machine0 = machineBusyMs();
  const t0 = performance.now();
  return {
    end: () => {
      const wall = performance.now() - t0;
      const parts = Object.entries(pids).map(([k, pid]) => {
        const b = before[k] ?? new Map<string, { cpu: number; wait: number }>();
        const busy = [...threadSched(pid)]
          .map(([t, v]) => ({ t, cpu: v.cpu - (b.get(t)?.cpu ?? 0), wait: v.wait - (b.get(t)?.wait ?? 0) }))
          .filter((x) => x.cpu >= 1)
          .sort((x, y) => y.cpu - x.cpu);
        const total = busy.reduce((n, x) => n + x.cpu, 0);
        return `${k} ${Math.round(total)} ms CPU [${busy
          .slice(0, 6)
          .map((x) => `${x.t} ${Math.round(x.cpu)} cpu/${Math.round(x.wait)} runq`)
          .join(', ')}]`;
      });
      return `wall ${Math.round(wall)} ms (2 CPUs: ${Math.round(2 * wall)} ms), machine busy ${Math.round(machineBusyMs() - machine0)} ms; ${parts.join('; ')}`;
    },
  };
}

/** etcd's disk and peer histograms worth reading around a window: a slow fsync or round trip shows here. */
const ETCD_HISTOGRAMS = [
  'etcd_disk_wal_fsync_duration_seconds',
  'etcd_disk_backend_commit_duration_seconds',
  'etcd_network_peer_round_trip_time_seconds',
];

/** Of each histogram: its count and the count of observations over 8 ms (summed over labels). */
async function etcdHistograms(endpoint: string): Promise<Record<string, { n: number; over8ms: number }>> {
  const text = await (await fetch(`${endpoint}/metrics`)).text();
  const out: Record<string, { n: number; over8ms: number }> = {};
  for (const name of ETCD_HISTOGRAMS) {
    let n = 0;
    let upTo8 = 0;
    for (const line of text.split('\n')) {
      if (line.startsWith(`${name}_count`)) n += Number(line.slice(line.lastIndexOf(' ') + 1));
      else if (line.startsWith(`${name}_bucket`) && line.includes('le="0.008"'))
        upTo8 += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    out[name.replace(/^etcd_|_duration_seconds$|_time_seconds$/g, '')] = { n, over8ms: n - upTo8 };
  }
  return out;
}

/** Between two SIGUSR2 to the same service (see probeWindow). */
const SIGNAL_GAP_MS = 20;

/** Arms the servers' probes and notes etcd's histograms; end() disarms them and logs what etcd did meanwhile. */
export async function probeWindow(
  enabled: boolean,
  probed: Probed,
  log: (msg: string) => void,
): Promise<{ end: (what: string) => Promise<void> }> {
  if (!enabled) return { end: async () => undefined };
  const before = await Promise.all(probed.etcd.map(etcdHistograms));
  for (const s of probed.servers) s.kill('SIGUSR2');
  // Signals do not queue: one sent right after another (a window ending, the next one starting) could be lost,
  // leaving the service's probe armed out of phase for the rest of the run.
  await new Promise((r) => setTimeout(r, SIGNAL_GAP_MS));
  const cpu0 = cpuSnapshot(probed);
  const t0 = performance.now();
  return {
    end: async (what) => {
      for (const s of probed.servers) s.kill('SIGUSR2');
      await new Promise((r) => setTimeout(r, SIGNAL_GAP_MS));
      const cpu1 = cpuSnapshot(probed);
      const wall = performance.now() - t0;
      const used = Object.fromEntries(Object.entries(cpu1).map(([k, v]) => [k, Math.round(v - (cpu0[k] ?? 0))]));
      log(`${what}: CPU ms used meanwhile (wall ${Math.round(wall)} ms, 2 CPUs): ${JSON.stringify(used)}`);
      const after = await Promise.all(probed.etcd.map(etcdHistograms));
      const diff = after.map((a, i) =>
        Object.fromEntries(
          Object.entries(a).map(([k, v]) => {
            const b = before[i]?.[k] ?? { n: 0, over8ms: 0 };
            return [k, `${v.n - b.n} (${v.over8ms - b.over8ms} over 8 ms)`];
          }),
        ),
      );
      log(`${what}: etcd members meanwhile: ${JSON.stringify(diff)}`);
    },
  };
}
