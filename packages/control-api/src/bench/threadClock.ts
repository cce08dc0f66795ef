/**
 * Where a thread's wall time went between two marks: its own CPU time, its wait in the run queue
 * (/proc/self/task/<tid>/schedstat: runnable but not running), and the machine's CPU pressure (PSI
 * "some": time some task waited for a CPU). Wall time that is neither CPU nor run-queue wait was
 * spent waiting (I/O, a timer, another process's answer). Linux only; NaN where unreadable.
 */
import { readFileSync } from 'node:fs';

export interface Mark {
  t: number;
  cpu: number;
  wait: number;
  psi: number;
}

/** The main thread's run-queue wait so far (ns). */
function runQueueWait(): number {
  try {
    return Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[1]);
  } catch {
    return NaN;
  }
}

/** PSI: microseconds some task waited for a CPU, machine-wide, so far. */
function pressure(): number {
  try {
    return Number(/some .*total=(\d+)/.exec(readFileSync('/proc/pressure/cpu', 'utf8'))?.[1] ?? NaN);
  } catch {
    return NaN;
  }
}

/** Now, for the main thread (call it on the main thread). */
export function mark(): Mark {
  const c = process.threadCpuUsage();
  return { t: performance.now(), cpu: (c.user + c.system) / 1000, wait: runQueueWait(), psi: pressure() };
}

const r = (x: number): number => Math.round(x * 100) / 100;

export function spentSince(m: Mark): { wall_ms: number; cpu_ms: number; runq_wait_ms: number; psi_some_ms: number } {
  const now = mark();
  return {
    wall_ms: r(now.t - m.t),
    cpu_ms: r(now.cpu - m.cpu),
    runq_wait_ms: r((now.wait - m.wait) / 1e6),
    psi_some_ms: r((now.psi - m.psi) / 1000),
  };
}
