/**
 * What `docker volume rm` waits for (issue 23): the benchmark's rm of a volume just made by `docker volume create`,
 * against the same rm with each of the agent's overlaps taken away, in interleaved rounds on one stack (the
 * FlockerDockerStack of the Docker e2e tests, at info level as the benchmark runs it). Each round runs, in an order
 * that rotates from round to round, `docker volume create` then `docker volume rm` (only the rm timed) as:
 *
 * - `local`: Docker's local driver; `noop`: the benchmark's no-op legacy plugin (Docker's floor for any plugin);
 * - `at once`: Flocker, the rm right after the create returned (the benchmark's scenario: the agent is still claiming,
 *   mounting and reporting the new volume when the rm arrives);
 * - `settled`: Flocker, the rm once the state shows the volume mounted here and 300 ms more have passed (nothing of
 *   the create overlaps the rm; the agent still reacts to the delete: unmount, detach, destroy, report);
 * - `settled/stopped`: the same, the agent SIGSTOPped just before the rm and resumed after it (neither the
 *   create nor the delete's teardown overlaps: what is left is the plugin's and the control service's part);
 * - `stopped throughout`: the agent SIGSTOPped from before the create to after the rm (session 17's "1.31×");
 * - `at once/stopped` (only with --sides): the agent SIGSTOPped right after the create returned and resumed
 *   after the rm: the most that putting off all of the agent's work (its claim, mount and report of the new volume,
 *   and its reaction to the delete) until after the rm could give in the benchmark's scenario.
 *
 * As the benchmark, each create starts with the pool holding 2 spares of 10 GiB and earlier destroys done (untimed).
 * Prints each side's median, p90 and max, the ratio of medians to `local`, and the median of the paired differences
 * against `at once` with how many rounds were faster.
 *
 *   node e2e/dist/trace-rm.js [--rounds 12] [--sides a,b,…] [--json FILE] [--logs DIR]
 *
 * With --logs, the plugin's and the agent's logs are kept in DIR, and the plugin's own Remove (its logged answer time)
 * is tabled per side too.
 *
 * Needs root and dockerd.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { FlockerDockerStack } from './docker';

const GiB = 1024 ** 3;
const ALL_SIDES = [
  'local',
  'noop',
  'at once',
  'at once/stopped',
  'settled',
  'settled/stopped',
  'stopped throughout',
] as const;
type Side = (typeof ALL_SIDES)[number];
const DEFAULT_SIDES: readonly Side[] = ['local', 'noop', 'at once', 'settled', 'settled/stopped', 'stopped throughout'];

/** The sides named by --sides (comma-separated), in ALL_SIDES' order; every name must be known. */
export function chooseSides(arg: string | undefined): Side[] {
  if (arg === undefined) return [...DEFAULT_SIDES];
  const asked = arg.split(',').map((x) => x.trim());
  const unknown = asked.filter((x) => !(ALL_SIDES as readonly string[]).includes(x));
  if (unknown.length > 0) throw new Error(`unknown side(s): ${unknown.join(', ')}; known: ${ALL_SIDES.join(', ')}`);
  return ALL_SIDES.filter((x) => asked.includes(x));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits (untimed, up to 10 s) until `check` holds; whether it did. */
async function until(check: () => boolean | Promise<boolean>, ms = 10_000, every = 20): Promise<boolean> {
  for (const t0 = performance.now(); performance.now() - t0 < ms; await sleep(every)) if (await check()) return true;
  return check();
}

function names(dir: string): string[] {
  return fs.existsSync(dir) ? fs.readdirSync(dir) : [];
}

/** The pool holds 2 ready spares of 10 GiB and at most `volumes` volumes (the agent's destroys done). */
function poolSettled(root: string, volumes: number): boolean {
  const spares = path.join(root, 'pool', 'spares');
  const ready = names(spares).filter(
    (n) =>
      /^[0-9a-f-]{36}\.img$/.test(n) && fs.statSync(path.join(spares, n), { throwIfNoEntry: false })?.size === 10 * GiB,
  );
  const held = names(path.join(root, 'pool', 'volumes')).filter((n) => n.endsWith('.img'));
  return ready.length >= 2 && held.length <= volumes;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[m] ?? NaN) : ((s[m - 1] ?? NaN) + (s[m] ?? NaN)) / 2;
}

export function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? NaN;
}

/** One row per side: median, p90, max, ratio to `base`'s median, and paired differences against `against`. */
export function sideTable(samples: Readonly<Record<string, readonly number[]>>, base: string, against: string): string {
  const r1 = (x: number) => x.toFixed(1);
  const lines = [
    `| side | median | p90 | max | / ${base} | median of (side − ${against}) | faster than ${against} |`,
    '|---|---:|---:|---:|---:|---:|---:|',
  ];
  const baseMedian = median(samples[base] ?? []);
  const ref = samples[against] ?? [];
  for (const [side, xs] of Object.entries(samples)) {
    const n = Math.min(xs.length, ref.length);
    const diffs = Array.from({ length: n }, (_, i) => (xs[i] ?? NaN) - (ref[i] ?? NaN));
    const faster = diffs.filter((d) => d < 0).length;
    lines.push(
      `| ${side} | ${r1(median(xs))} | ${r1(quantile(xs, 0.9))} | ${r1(Math.max(...xs))} | ` +
        `${(median(xs) / baseMedian).toFixed(3)} | ${side === against ? '—' : r1(median(diffs))} | ` +
        `${side === against ? '—' : `${faster}/${n}`} |`,
    );
  }
  return lines.join('\n') + '\n';
}

/** Each Remove's duration_ms in a plugin log (JSON lines), by volume name; the last one of a name wins. */
export function removeDurations(log: string): Map<string, number> {
  const found = new Map<string, number>();
  for (const line of log.split('\n')) {
    if (!line.includes('/VolumeDriver.Remove')) continue;
    try {
      const j = JSON.parse(line) as { call?: unknown; duration_ms?: unknown; request?: { Name?: unknown } };
      if (j.call === '/VolumeDriver.Remove' && typeof j.duration_ms === 'number' && typeof j.request?.Name === 'string')
        found.set(j.request.Name, j.duration_ms);
    } catch {
      // Not a JSON line.
    }
  }
  return found;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes('--help')) {
    process.stdout.write(
      `usage: node e2e/dist/trace-rm.js [--rounds 12] [--sides a,b,…] [--json FILE] [--logs DIR]\nsides: ${ALL_SIDES.join(', ')}\n`,
    );
    return;
  }
  const at = (flag: string) => {
    const i = args.indexOf(flag);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const rounds = Math.max(2, Number(at('--rounds') ?? 12));
  const json = at('--json');
  const logs = at('--logs');
  const SIDES = chooseSides(at('--sides'));
  if (!SIDES.includes('at once'))
    throw new Error('--sides must include "at once" (the paired differences are against it)');
  const base = SIDES.includes('local') ? 'local' : 'at once';
  const stack = await FlockerDockerStack.start({ driver: `flocker-trm-${process.pid}` });
  const noopDriver = `flocker-trm-noop-${process.pid}`;
  const socket = `/run/docker/plugins/${noopDriver}.sock`;
  const script = path.join(
    path.dirname(require.resolve('@flocker/volume-plugin/package.json')),
    'dist',
    'bench',
    'noopPlugin.js',
  );
  const noop = spawn(process.execPath, [script, '--socket', socket, '--root', path.join(stack.root, 'noop')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const samples: Partial<Record<Side, number[]>> = Object.fromEntries(SIDES.map((s) => [s, []]));
  let unsettled = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      noop.once('exit', (code) => reject(new Error(`the no-op plugin exited (${code}) before it listened`)));
      noop.stdout.once('data', () => resolve());
    });
    const agentPid = (): number => {
      const pid = stack.agent.pid;
      if (pid === undefined) throw new Error('the agent has no pid');
      return pid;
    };
    /** The state shows the volume `name` mounted on a node. */
    const mounted = async (name: string): Promise<boolean> => {
      const s = await stack.client.waitForCluster(undefined, 0);
      const d = s.datasets.find((x) => x.metadata.name === name && !x.deleted);
      return (
        d !== undefined &&
        s.nodes.some((n) => n.manifestations.some((m) => m.dataset_id === d.dataset_id && m.status === 'mounted'))
      );
    };
    const timedRm = async (name: string): Promise<number> => {
      const t0 = performance.now();
      await stack.docker(['volume', 'rm', name]);
      return performance.now() - t0;
    };
    const one = async (side: Side, name: string): Promise<number> => {
      if (!(await until(() => poolSettled(stack.root, 0)))) unsettled++;
      const driver = side === 'local' ? [] : ['-d', side === 'noop' ? noopDriver : stack.driver];
      const stopAll = side === 'stopped throughout';
      if (stopAll) process.kill(agentPid(), 'SIGSTOP');
      try {
        await stack.docker(['volume', 'create', ...driver, name]);
        if (side === 'settled' || side === 'settled/stopped') {
          if (!(await until(() => mounted(name)))) unsettled++;
          await sleep(300);
        }
        const stopForRm = side === 'settled/stopped' || side === 'at once/stopped';
        if (stopForRm) process.kill(agentPid(), 'SIGSTOP');
        try {
          return await timedRm(name);
        } finally {
          if (stopForRm) process.kill(agentPid(), 'SIGCONT');
        }
      } finally {
        if (stopAll) process.kill(agentPid(), 'SIGCONT');
      }
    };
    // Warm-up (untimed): Docker, both plugins, the agent's spare class of 10 GiB.
    for (const side of SIDES) await one(side, `trm-warm-${SIDES.indexOf(side)}`);
    for (let i = 0; i < rounds; i++) {
      const k = i % SIDES.length;
      const order = [...SIDES.slice(k), ...SIDES.slice(0, k)];
      if (i % 2 === 1) order.reverse();
      for (const side of order) (samples[side] ??= []).push(await one(side, `trm-${i}-${SIDES.indexOf(side)}`));
      process.stderr.write(`round ${i + 1}/${rounds} done\n`);
    }
  } finally {
    noop.kill('SIGTERM');
    fs.rmSync(socket, { force: true });
    if (logs !== undefined) {
      fs.mkdirSync(logs, { recursive: true });
      for (const f of ['plugin.log', 'agent.log'])
        fs.copyFileSync(path.join(stack.root, f), path.join(logs, f), fs.constants.COPYFILE_FICLONE);
    }
    await stack.close();
  }
  const removes =
    logs !== undefined ? removeDurations(fs.readFileSync(path.join(logs, 'plugin.log'), 'utf8')) : undefined;
  // The plugin's own Remove (its answer's time, from its log) per side, in the same rounds: what of each rm is
  // Flocker's call (the DELETE) and what is Docker's around it.
  const inside: Partial<Record<Side, number[]>> = {};
  if (removes !== undefined)
    for (const side of SIDES)
      for (let i = 0; i < rounds; i++) {
        const d = removes.get(`trm-${i}-${SIDES.indexOf(side)}`);
        if (d !== undefined) (inside[side] ??= []).push(d);
      }
  if (json !== undefined) fs.writeFileSync(json, JSON.stringify({ rounds, samples, inside }, null, 2) + '\n');
  process.stdout.write(
    `\n### docker volume rm of a volume just created: ${rounds} interleaved rounds (ms)\n\n` +
      sideTable(samples, base, 'at once') +
      (unsettled > 0 ? `\n${unsettled} waits (pool refill, destroys, or the mount) ran out after 10 s.\n` : ''),
  );
  if (Object.keys(inside).length > 0 && inside['at once'] !== undefined)
    process.stdout.write(
      `\n### the plugin's Remove alone (its log's duration_ms), same rounds (ms)\n\n` +
        sideTable(inside, 'at once', 'at once'),
    );
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`trace-rm failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
