/**
 * The Kubernetes harness (scripts/k8s) seen from TypeScript: build/up/down, kubectl, and the few
 * observations the k8s-csi test and the k8s benchmark make. Each harness lives in its own state
 * directory; its ports are fixed (scripts/k8s/lib.sh), so one runs at a time per machine.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { FlockerClient } from '@flocker/api';
import { z } from 'zod';
import { waitFor } from './cluster/run';

export const K8S_SCRIPTS = join(resolve(__dirname, '../..'), 'scripts/k8s');
export const DRIVER = 'flocker.clusterhq.io';
/** Where up.sh serves the Flocker control service (plain HTTP on loopback; scripts/k8s/lib.sh). */
export const FLOCKER_URL = 'http://127.0.0.1:14523';

const PodJson = z.object({
  metadata: z.object({ name: z.string(), uid: z.string(), deletionTimestamp: z.string().optional() }),
  spec: z.object({ nodeName: z.string().optional() }),
  status: z.object({ phase: z.string().optional() }),
});
export type Pod = z.infer<typeof PodJson>;

const CsiNodeList = z.object({
  items: z.array(
    z.object({
      metadata: z.object({ name: z.string() }),
      spec: z.object({
        drivers: z
          .array(z.object({ name: z.string(), nodeID: z.string() }))
          .nullable()
          .optional(),
      }),
    }),
  ),
});

export class K8sHarness {
  readonly flocker = new FlockerClient({ baseUrl: FLOCKER_URL });
  private kubectlBin = '';

  constructor(readonly dir: string) {}

  private get env(): NodeJS.ProcessEnv {
    return { ...process.env, FLOCKER_K8S_DIR: this.dir, KUBECONFIG: join(this.dir, 'pki/admin.kubeconfig') };
  }

  /**
   * The binaries, from the cache (seconds) or built (cold: ~35 min, announced on stderr). Returns
   * how long it took.
   */
  build(): number {
    const started = Date.now();
    const out = execFileSync('bash', [join(K8S_SCRIPTS, 'build.sh')], {
      env: this.env,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      timeout: 3_300_000,
    });
    this.kubectlBin = join(out.trim().split(' ')[0] ?? '', 'kubectl');
    return Date.now() - started;
  }

  /** Runs scripts/k8s/<script> with the harness's state dir; rejects with its stderr and log tails. */
  script(script: string, args: string[] = [], timeoutMs = 900_000, env: NodeJS.ProcessEnv = {}): Promise<string> {
    return new Promise((res, rej) => {
      execFile(
        'bash',
        [join(K8S_SCRIPTS, script), ...args],
        { env: { ...this.env, ...env }, timeout: timeoutMs, maxBuffer: 64 << 20 },
        (err, stdout, stderr) => {
          if (err) rej(new Error(`${script} failed: ${err.message}\n${stderr}\n${this.logTails()}`));
          else res(stdout + stderr);
        },
      );
    });
  }

  /**
   * Starts the cluster. unusedReleaseAfterS, handoverWaitS: the node plugins' --unused-release-after and
   * --handover-wait (default flocker-csi's 30 s and 10 s), for a test that waits for that release or that refusal.
   */
  up(opts: { unusedReleaseAfterS?: number; handoverWaitS?: number } = {}): Promise<string> {
    const env: NodeJS.ProcessEnv = {};
    if (opts.unusedReleaseAfterS !== undefined)
      env['FLOCKER_K8S_UNUSED_RELEASE_AFTER'] = String(opts.unusedReleaseAfterS);
    if (opts.handoverWaitS !== undefined) env['FLOCKER_K8S_HANDOVER_WAIT'] = String(opts.handoverWaitS);
    return this.script('up.sh', [], 900_000, env);
  }

  /** Stops and cleans up; a no-op when nothing was started. */
  async down(): Promise<string> {
    return existsSync(join(this.dir, 'run')) ? this.script('down.sh', [], 300_000) : '';
  }

  logTails(lines = 15): string {
    const logs = join(this.dir, 'logs');
    if (!existsSync(logs)) return '';
    return readdirSync(logs)
      .map((f) => `--- ${f}\n${readFileSync(join(logs, f), 'utf8').split('\n').slice(-lines).join('\n')}`)
      .join('\n');
  }

  kubectl(args: string[], input?: string, timeoutMs = 120_000): Promise<string> {
    return new Promise((res, rej) => {
      const child = execFile(
        this.kubectlBin,
        args,
        { env: this.env, timeout: timeoutMs, maxBuffer: 16 << 20 },
        (err, stdout, stderr) => {
          if (err) rej(new Error(`kubectl ${args.join(' ')}: ${stderr || err.message}`));
          else res(stdout);
        },
      );
      if (input !== undefined) child.stdin?.end(input);
    });
  }

  apply(yaml: string): Promise<string> {
    return this.kubectl(['apply', '-f', '-'], yaml);
  }

  /** `kubectl describe pod`, for failure messages (synchronous, as waitFor's context is). */
  describePod(name: string): string {
    try {
      return execFileSync(this.kubectlBin, ['describe', 'pod', name], {
        env: this.env,
        encoding: 'utf8',
        timeout: 30_000,
      });
    } catch (e) {
      return String(e);
    }
  }

  async pod(name: string): Promise<Pod | undefined> {
    const out = await this.kubectl(['get', 'pod', name, '-o', 'json', '--ignore-not-found']);
    return out.trim() === '' ? undefined : PodJson.parse(JSON.parse(out));
  }

  /** Waits for the pod Running: a new incarnation (not notUid), on `node` when given (else an error). */
  podRunning(
    name: string,
    opts: { notUid?: string; node?: string; timeoutMs?: number; intervalMs?: number } = {},
  ): Promise<Pod> {
    return waitFor(
      `pod ${name} Running${opts.node !== undefined ? ` on ${opts.node}` : ''}`,
      async () => {
        const pod = await this.pod(name);
        if (pod === undefined || pod.metadata.uid === opts.notUid || pod.metadata.deletionTimestamp !== undefined)
          return undefined;
        if (pod.status.phase !== 'Running') return undefined;
        if (opts.node !== undefined && pod.spec.nodeName !== opts.node)
          throw new Error(`pod ${name} runs on ${pod.spec.nodeName}, not ${opts.node}`);
        return pod;
      },
      {
        timeoutMs: opts.timeoutMs ?? 180_000,
        intervalMs: opts.intervalMs ?? 500,
        context: () => `${this.describePod(name)}\n${this.logTails()}`,
      },
    );
  }

  /**
   * Waits for the pod Running with a watch (one kubectl process), for timings: `kubectl wait`
   * returns as soon as the apiserver reports the phase.
   */
  async waitRunning(name: string, timeoutS = 180): Promise<void> {
    await this.kubectl(
      ['wait', `pod/${name}`, '--for=jsonpath={.status.phase}=Running', `--timeout=${timeoutS}s`],
      undefined,
      (timeoutS + 10) * 1000,
    );
  }

  /** Node name → the node id its kubelet registered for the Flocker driver (NodeGetInfo: the Flocker node UUID). */
  async csiNodeIds(): Promise<Record<string, string>> {
    const list = CsiNodeList.parse(JSON.parse(await this.kubectl(['get', 'csinode', '-o', 'json'])));
    const ids: Record<string, string> = {};
    for (const n of list.items)
      for (const d of n.spec.drivers ?? []) if (d.name === DRIVER) ids[n.metadata.name] = d.nodeID;
    return ids;
  }

  /** The Flocker node UUID of the dataset agent beside kubelet node<index>. */
  agentNodeUuid(index: number): string {
    return z
      .object({ uuid: z.string() })
      .parse(JSON.parse(readFileSync(join(this.dir, `n${index}/flocker/state/node.json`), 'utf8'))).uuid;
  }
}
