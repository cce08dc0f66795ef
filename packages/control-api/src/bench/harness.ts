/**
 * What the control-service benchmarks share: latency statistics, a bounded-concurrency loop,
 * a flocker-control child process (so its RSS is its own) and the RSS of a process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { CONTROL_ENV, CONTROL_NODE_FLAGS } from '../nodeFlags';

export interface Stats {
  n: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
}

export function stats(samples: number[]): Stats {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
  const r = (x: number): number => Math.round(x * 100) / 100;
  return { n: s.length, p50_ms: r(at(0.5)), p99_ms: r(at(0.99)), max_ms: r(s[s.length - 1] ?? NaN) };
}

export async function pooled<T>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) {
        const item = items[next++] as T;
        await fn(item);
      }
    }),
  );
}

export function rssMiB(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string): number => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
  return { rss: Math.round(kb('VmRSS') / 1024), hwm: Math.round(kb('VmHWM') / 1024) };
}

const OWN_DIST = path.join(__dirname, '..');

/** Plain HTTP for the benchmark; a flocker-control that defaults to TLS needs asking for it. */
function plainHttpArgs(dist: string): string[] {
  return readFileSync(path.join(dist, 'main.js'), 'utf8').includes('insecure-http') ? ['--insecure-http'] : [];
}

/**
 * flocker-control on `dataDir`. `dist`: another build's control-api dist (e.g. a copy of the previous one, for an
 * old/new comparison in one run); its packages resolve from this repository's node_modules.
 */
export function startServer(
  dataDir: string,
  nodeArgs: readonly string[],
  storeArgs: readonly string[] = [],
  dist: string = OWN_DIST,
): Promise<{ child: ChildProcess; url: string }> {
  const modules =
    dist === OWN_DIST ? {} : { NODE_PATH: path.resolve(__dirname, '..', '..', '..', '..', 'node_modules') };
  const child = spawn(
    process.execPath,
    [
      ...CONTROL_NODE_FLAGS,
      ...nodeArgs,
      path.join(dist, 'main.js'),
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--data-dir',
      dataDir,
      '--node-timeout',
      '3600',
      '--log-level',
      // FLOCKER_BENCH_SERVER_LOG_LEVEL=debug: e.g. each commit's timeline (committer.ts), on stdout after listening.
      process.env['FLOCKER_BENCH_SERVER_LOG_LEVEL'] ?? 'error',
      ...plainHttpArgs(dist),
      ...storeArgs,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...CONTROL_ENV, ...modules } },
  );
  return new Promise((resolve, reject) => {
    let out = '';
    let listening = false;
    child.stdout?.on('data', (c: Buffer) => {
      // Other lines than the listening one (e.g. --trace-gc through --server-node-arg) go to stderr.
      if (listening) return void process.stderr.write(c);
      out += c.toString();
      for (let nl = out.indexOf('\n'); nl >= 0 && !listening; nl = out.indexOf('\n')) {
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        if (!line.startsWith('{"listening"')) {
          process.stderr.write(`${line}\n`);
          continue;
        }
        listening = true;
        resolve({ child, url: (JSON.parse(line) as { listening: string }).listening });
        if (out.length > 0) process.stderr.write(out);
      }
    });
    child.once('exit', (code) => reject(new Error(`${path.join(dist, 'main.js')} exited (${code})`)));
  });
}

/** SIGTERM (a graceful stop writes --cpu-prof/--heap-prof output), SIGKILL after 10 s. */
export function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

export async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}
