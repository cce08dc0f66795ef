/**
 * How flocker-control's node runs (main.ts's #! line; the benchmark and scripts/up.sh
 * start it the same way).
 *
 * A small fixed young generation (4 MB semi-spaces): V8 sizes it from the machine's
 * memory (128 MB young generation on a 24 GB host, RSS past 400 MB). The earlier
 * --optimize-for-size kept RSS low but made every full GC a compacting "reduce" GC:
 * at 10,000 datasets and 1,000 long-polling agents that was ~125 full GCs in the
 * benchmark, pauses up to 40 ms, 5.8 s of GC in all, and they set every create p99.
 * With 4 MB semi-spaces full GCs pause ~10 ms; RSS stays ~190-245 MB.
 * MALLOC_ARENA_MAX=2: glibc's per-thread malloc arenas (libuv threads, gRPC to etcd)
 * otherwise hold tens of MB of freed native memory.
 */
export const CONTROL_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4'];
export const CONTROL_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' };

/** The #! line main.ts must carry (checked by a test): `env -S` sets the variables, then runs node with the flags. */
export function controlShebang(): string {
  const env = Object.entries(CONTROL_ENV).map(([k, v]) => `${k}=${v}`);
  return `#!/usr/bin/env -S ${[...env, 'node', ...CONTROL_NODE_FLAGS].join(' ')}`;
}
