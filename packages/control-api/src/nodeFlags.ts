/**
 * How flocker-control's node runs (main.ts's #! line; the benchmark and scripts/up.sh
 * start it the same way).
 *
 * A fixed young generation (32 MB semi-spaces; 4 MB before session 7): V8 sizes it from
 * the machine's memory (128 MB young generation on a 24 GB host, RSS past 400 MB). The earlier
 * --optimize-for-size kept RSS low but made every full GC a compacting "reduce" GC:
 * at 10,000 datasets and 1,000 long-polling agents that was ~125 full GCs in the
 * benchmark, pauses up to 40 ms, 5.8 s of GC in all, and they set every create p99.
 * With 4 MB semi-spaces full GCs pause ~10 ms; RSS stays ~190-245 MB.
 * At 10,000 agents / 100,000 datasets 4 MB was too small: ~4,100 scavenges per scale run
 * (6-8 s of pauses), short-lived answers promoted, and old-space full GCs of 300-400 MB
 * pausing 80-140 ms in the reads (3 runs of 4). 32 MB semi-spaces (session 7,
 * scale bench A/B): ~640 scavenges (~2.2 s), no full GC in the measured phases, RSS peak
 * 605-737 MiB (was 572-618). Only at launch: v8.setFlagsFromString cannot grow the
 * young generation past what the heap reserved at start-up (tried).
 * MALLOC_ARENA_MAX=2: glibc's per-thread malloc arenas (libuv threads, gRPC to etcd)
 * otherwise hold tens of MB of freed native memory.
 */
export const CONTROL_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=32'];
export const CONTROL_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' };

/** The #! line main.ts must carry (checked by a test): `env -S` sets the variables, then runs node with the flags. */
export function controlShebang(): string {
  const env = Object.entries(CONTROL_ENV).map(([k, v]) => `${k}=${v}`);
  return `#!/usr/bin/env -S ${[...env, 'node', ...CONTROL_NODE_FLAGS].join(' ')}`;
}
