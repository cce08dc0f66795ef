/**
 * CPU of a benchmark: its processes (a cpuacct cgroup of its own, which the processes it starts
 * inherit) and the host's kernel threads (write-out, loop devices' I/O; they include other load).
 * Used by the local-storage benchmarks (bench-local-move, bench-local-full-send).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { procStat } from './cluster/processes';

/**
 * CPU used by this process and everything it starts (a cgroup v1 cpuacct group of its own; null
 * where there is none), and by the host's kernel threads (children of kthreadd), in ms.
 */
export class CpuMeter {
  private readonly group: string | null;
  private readonly msPerTick =
    1000 / (Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100);

  /** name: the group's name (the pid is appended). */
  constructor(name = 'flocker-bench-local') {
    const root = '/sys/fs/cgroup/cpuacct';
    let group: string | null = null;
    try {
      if (fs.existsSync(path.join(root, 'cpuacct.usage'))) {
        group = path.join(root, `${name}-${process.pid}`);
        fs.mkdirSync(group);
        fs.writeFileSync(path.join(group, 'cgroup.procs'), String(process.pid));
      }
    } catch {
      // No cgroup of our own here (read-only, or cgroup v2 only): processes are not measured.
      if (group !== null && fs.existsSync(group)) fs.rmdirSync(group);
      group = null;
    }
    this.group = group;
  }

  /** ms of CPU of the benchmark's processes (null: not measured). */
  processes(): number | null {
    if (this.group === null) return null;
    return Number(fs.readFileSync(path.join(this.group, 'cpuacct.usage'), 'utf8')) / 1e6;
  }

  /** ms of CPU of every kernel thread so far (utime + stime of kthreadd's children). */
  kernelThreads(): number {
    let ticks = 0;
    for (const pid of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      const f = procStat(pid); // undefined: gone meanwhile
      if (f?.[1] === '2') ticks += Number(f[11]) + Number(f[12]);
    }
    return ticks * this.msPerTick;
  }

  sample(): { processes: number | null; kernelThreads: number } {
    return { processes: this.processes(), kernelThreads: this.kernelThreads() };
  }

  /** Leaves the group and removes it (its last processes may take a moment to go). */
  async close(): Promise<void> {
    if (this.group === null) return;
    fs.writeFileSync('/sys/fs/cgroup/cpuacct/cgroup.procs', String(process.pid));
    for (let i = 0; i < 40; i++) {
      try {
        fs.rmdirSync(this.group);
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }
}

export type CpuSample = ReturnType<CpuMeter['sample']>;

/** s of CPU per GiB between two samples: processes, kernel threads, both. */
export function cpuPerGib(
  a: CpuSample,
  b: CpuSample,
  bytes: number,
): { processes: number | null; kernelThreads: number; total: number | null } {
  const gib = bytes / (1024 * 1024 * 1024);
  const round = (ms: number): number => Math.round((ms / 1000 / gib) * 100) / 100;
  const processes = a.processes !== null && b.processes !== null ? round(b.processes - a.processes) : null;
  const kernelThreads = round(b.kernelThreads - a.kernelThreads);
  return {
    processes,
    kernelThreads,
    total: processes !== null ? Math.round((processes + kernelThreads) * 100) / 100 : null,
  };
}
