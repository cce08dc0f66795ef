/**
 * Kubernetes benchmark on the scripts/k8s harness (issue 19):
 *   node e2e/dist/k8s-bench.js --out <json> [--runs 20]
 * Per run, in the same cluster, alternating the nodes:
 * - newVolume: `kubectl apply` of a PVC (StorageClass flocker) + a pod using it → the pod Running
 *   (provisioning, the dataset created, staged and published on the pod's node);
 * - emptyDir: the same pod with an emptyDir volume → Running (the baseline);
 * - reschedule: the PVC pod deleted (until gone; 5 s grace, the workload exits on SIGTERM), then
 *   created on the other node → Running, the data it wrote there (checked after each run, not
 *   timed); the emptyDir pod the same way.
 * Times are client-side: from the apply to `kubectl wait` seeing phase Running (one watch).
 * Each timed step starts after a pause of 0–1 s drawn from a seeded generator (not timed): a kubelet
 * reports a started container at its next 1-s PLEG relist, and a loop that starts each step right
 * after the previous wait returned is phase-locked to one kubelet's relist, so every sample of a
 * node lands on the same side of a tick (bimodal 1 s / 2 s results). Real pods start at any phase.
 * Needs root; builds the harness binaries if the cache is cold.
 */
import * as fs from 'node:fs';
import { latencyStats, type LatencyStats } from './cluster';
import { K8sHarness } from './k8s-harness';

interface Args {
  out: string;
  runs: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { out: 'bench-k8s.json', runs: 20 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[i + 1];
    if (k === '--out' && v !== undefined) args.out = v;
    else if (k === '--runs' && v !== undefined) args.runs = Number(v);
    else throw new Error(`unknown argument ${k}; usage: k8s-bench.js --out FILE [--runs N]`);
    i++;
  }
  if (!Number.isInteger(args.runs) || args.runs < 1) throw new Error('--runs must be a positive integer');
  return args;
}

function podYaml(name: string, node: string, volume: 'pvc' | 'emptyDir', claim: string): string {
  const source = volume === 'pvc' ? `persistentVolumeClaim: {claimName: ${claim}}` : 'emptyDir: {}';
  return `apiVersion: v1
kind: Pod
metadata: {name: ${name}}
spec:
  nodeSelector: {kubernetes.io/hostname: ${node}}
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 5
  containers:
  - name: c
    image: docker.io/library/busybox:1.35
    imagePullPolicy: Never
    command: ["/bin/sh", "-c", "trap 'exit 0' TERM; [ -f /data/mark ] || echo ${name}-${claim} > /data/mark; sleep 100000 & wait"]
    volumeMounts: [{name: d, mountPath: /data}]
  volumes: [{name: d, ${source}}]
`;
}

function pvcYaml(claim: string): string {
  return `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: ${claim}}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: flocker
  resources: {requests: {storage: 64Mi}}
---
`;
}

/** A small seeded generator (mulberry32): the same pauses on every run of the benchmark. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = seeded(19);
const dephase = (): Promise<void> => new Promise((res) => setTimeout(res, Math.floor(random() * 1000)));

async function timed(f: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await f();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const k8s = new K8sHarness('/tmp/flocker-k8s-bench');
  const buildMs = k8s.build();
  process.stderr.write(`k8s binaries ready in ${(buildMs / 1000).toFixed(1)} s\n`);
  const samples: Record<string, number[]> = {
    newVolume: [],
    emptyDir: [],
    reschedule: [],
    rescheduleEmptyDir: [],
    deletePvcPod: [],
    deleteEmptyDirPod: [],
  };
  try {
    process.stderr.write(await k8s.up());
    for (let r = 0; r < args.runs; r++) {
      const [here, there] = r % 2 === 0 ? ['node1', 'node2'] : ['node2', 'node1'];
      const claim = `bench-${r}`;
      // Baseline first, then Flocker, in the same conditions.
      await dephase();
      samples.emptyDir!.push(
        await timed(async () => {
          await k8s.apply(podYaml('ed', here, 'emptyDir', claim));
          await k8s.waitRunning('ed');
        }),
      );
      await dephase();
      samples.newVolume!.push(
        await timed(async () => {
          await k8s.apply(pvcYaml(claim) + podYaml('pv', here, 'pvc', claim));
          await k8s.waitRunning('pv');
        }),
      );
      // Moved: the pod deleted (a grace period, as a real workload has: the kubelet unmounts before
      // the pod object goes) and created on the other node, until Running there.
      await dephase();
      samples.rescheduleEmptyDir!.push(
        await timed(async () => {
          samples.deleteEmptyDirPod!.push(await timed(() => k8s.kubectl(['delete', 'pod', 'ed', '--wait=true'])));
          await k8s.apply(podYaml('ed', there, 'emptyDir', claim));
          await k8s.waitRunning('ed');
        }),
      );
      await dephase();
      samples.reschedule!.push(
        await timed(async () => {
          samples.deletePvcPod!.push(await timed(() => k8s.kubectl(['delete', 'pod', 'pv', '--wait=true'])));
          await k8s.apply(podYaml('pv', there, 'pvc', claim));
          await k8s.waitRunning('pv');
        }),
      );
      const mark = (await k8s.kubectl(['exec', 'pv', '--', 'cat', '/data/mark'])).trim();
      if (mark !== `pv-${claim}`)
        throw new Error(`run ${r}: the rescheduled pod on ${there} read "${mark}", not the data written on ${here}`);
      await k8s.kubectl(['delete', 'pod', 'ed', 'pv', '--wait=true']);
      await k8s.kubectl(['delete', 'pvc', claim, '--wait=true']);
      process.stderr.write(
        `run ${r + 1}/${args.runs}: ${Object.entries(samples)
          .map(([k, v]) => `${k} ${Math.round(v[r] ?? NaN)}`)
          .join(', ')} ms\n`,
      );
    }
  } finally {
    process.stderr.write(await k8s.down().catch((e: unknown) => String(e)));
  }
  const st: Record<string, LatencyStats> = Object.fromEntries(
    Object.entries(samples).map(([k, v]) => [k, latencyStats(v)]),
  );
  const ratio = (a: string, b: string): number =>
    Math.round(((st[a]?.median_ms ?? NaN) / (st[b]?.median_ms ?? NaN)) * 100) / 100;
  const ratios = {
    newVolumeVsEmptyDir: ratio('newVolume', 'emptyDir'),
    rescheduleVsEmptyDir: ratio('reschedule', 'rescheduleEmptyDir'),
  };
  fs.writeFileSync(args.out, JSON.stringify({ runs: args.runs, buildMs, stats: st, ratios }, null, 2));
  const row = (label: string, k: string): string => {
    const s = st[k];
    return `| ${label} | ${s?.median_ms} | ${s?.p99_ms} | ${s?.min_ms} | ${s?.max_ms} |`;
  };
  const lines = [
    'Two kubelets (scripts/k8s, Kubernetes v1.35 from the Go module proxy), StorageClass `flocker` ' +
      '(Immediate binding, CSIDriver `attachRequired: false`, `flocker-csi --handover-wait 10`), ' +
      `64 MiB volumes, busybox pods with \`imagePullPolicy: Never\`; ${args.runs} runs alternating the nodes, ` +
      'each Flocker step right after its `emptyDir` baseline. Client-side times: `kubectl apply` → `kubectl wait` sees phase Running (ms). ' +
      'Each step starts after an untimed pause of 0–1 s (seeded): a kubelet reports a started container at its next 1-s relist, ' +
      'and steps started right after the previous wait are phase-locked to one kubelet’s relist (bimodal 1 s / 2 s samples); real pods start at any phase.',
    '',
    '| Step | median | p99 | min | max |',
    '|---|---|---|---|---|',
    row('pod with `emptyDir` → Running', 'emptyDir'),
    row('PVC + pod (new Flocker volume) → Running', 'newVolume'),
    row('`emptyDir` pod deleted (until the object is gone)', 'deleteEmptyDirPod'),
    row('Flocker pod deleted (until the object is gone: its volume unpublished)', 'deletePvcPod'),
    row('`emptyDir` pod moved: deleted, created on the other node → Running', 'rescheduleEmptyDir'),
    row(
      'Flocker pod moved: deleted, created on the other node → Running with its volume (unstaged there, lease handed over, moved; data checked after)',
      'reschedule',
    ),
    '',
    '| Ratio of medians | measured | target |',
    '|---|---|---|',
    `| new volume / \`emptyDir\` | ${ratios.newVolumeVsEmptyDir} | ≤ 1.5 (${ratios.newVolumeVsEmptyDir <= 1.5 ? 'met' : 'not met'}) |`,
    `| moved with its data / \`emptyDir\` pod moved | ${ratios.rescheduleVsEmptyDir} | — |`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
