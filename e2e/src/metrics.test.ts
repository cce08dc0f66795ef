/**
 * Metrics and health (issue 22) against a real cluster (e2e/src/cluster: control service, two hosts with dataset
 * agent, Docker plugin and dockerd, a container agent on host a) scraped by a real Prometheus (Debian's), run in
 * the control service's network namespace with a 1-s scrape interval and the repository's alert rules. A create,
 * a Docker mount and a move show up in the expected series (read through Prometheus' HTTP query API); /healthz and
 * /readyz answer, and an agent's /readyz fails naming "control" while the control service is down. Also
 * `promtool check rules` / `promtool test rules` on docs/prometheus and every Grafana panel query parsed by the
 * running Prometheus. Needs root.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import {
  REPO_ROOT,
  TEST_DATASET_SIZE,
  TINY_IMAGE,
  VOLUME_DRIVER,
  defaultCommands,
  waitFor,
  waitForMountedOn,
  type Cluster,
  type ClusterHost,
} from './cluster';
import { inNetns } from './cluster/namespaces';
import { isAlive, spawnDetached, stopPid } from './cluster/processes';
import { clusterForSuite } from './cluster/suite';
import { removeTree } from './removeTree';

jest.setTimeout(120_000);

const exec = promisify(execFile);
const RULES = path.join(REPO_ROOT, 'docs/prometheus/flocker-rules.yml');
const RULES_TEST = path.join(REPO_ROOT, 'docs/prometheus/flocker-rules.test.yml');
const DASHBOARD = path.join(REPO_ROOT, 'docs/grafana/flocker.json');
const PROMETHEUS_PORT = 9090;
const PORTS = { control: 4530, agent: 4531, plugin: 4532, containerAgent: 4533 } as const;

/** The agents listen on every address of their host's network namespace, so Prometheus can reach them. */
const everywhere = ['--metrics-address', '0.0.0.0'];

let cluster: Cluster;
let a: ClusterHost;
let b: ClusterHost;
let promDir: string;
let promPid: number | undefined;
let promUrl: string;

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

/** An instant query through Prometheus' HTTP API. */
async function query(expr: string): Promise<Sample[]> {
  const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await res.json()) as { status: string; error?: string; data?: { result: Sample[] } };
  if (body.status !== 'success') throw new Error(`query ${expr} failed: ${body.error ?? res.status}`);
  return body.data?.result ?? [];
}

/** The one value of a query that sums to one series (0 when there is none). */
async function scalar(expr: string): Promise<number> {
  const r = await query(`sum(${expr})`);
  return r.length === 0 ? 0 : Number(r[0]?.value[1]);
}

/** Waits until Prometheus has scraped a value of expr that satisfies ok. */
function eventually(what: string, expr: string, ok: (v: number) => boolean, timeoutMs = 30_000): Promise<number> {
  let last = NaN;
  return waitFor(
    what,
    async () => {
      last = await scalar(expr);
      return ok(last) ? last : undefined;
    },
    { timeoutMs, intervalMs: 500, context: () => `${expr} = ${last}` },
  );
}

/** GET a path of a listener inside a host's network namespace (the test process is not on the bridge). */
async function curlIn(host: ClusterHost | 'control', url: string): Promise<{ status: number; body: string }> {
  const argv = ['curl', '-s', '-m', '5', '-w', '\n%{http_code}', url];
  const r = host === 'control' ? await cluster.execInControlNetns(argv) : await host.exec(argv, { check: false });
  const cut = r.stdout.lastIndexOf('\n');
  return { status: Number(r.stdout.slice(cut + 1)), body: r.stdout.slice(0, cut) };
}

function prometheusConfig(c: Cluster): string {
  const job = (name: string, targets: string[]) => [
    `  - job_name: ${name}`,
    '    static_configs:',
    `      - targets: [${targets.map((t) => `'${t}'`).join(', ')}]`,
  ];
  const hosts = c.layout.hosts.map((h) => h.address);
  return [
    'global:',
    '  scrape_interval: 1s',
    '  scrape_timeout: 900ms',
    '  evaluation_interval: 1s',
    'rule_files:',
    `  - ${RULES}`,
    'scrape_configs:',
    // The control service's listener keeps its local-only default: Prometheus runs in its network namespace.
    ...job('flocker-control', [`127.0.0.1:${PORTS.control}`]),
    ...job(
      'flocker-dataset-agent',
      hosts.map((h) => `${h}:${PORTS.agent}`),
    ),
    ...job(
      'flocker-docker-plugin',
      hosts.map((h) => `${h}:${PORTS.plugin}`),
    ),
    ...job('flocker-container-agent', [`${c.layout.hosts[0]?.address ?? ''}:${PORTS.containerAgent}`]),
    '',
  ].join('\n');
}

clusterForSuite(
  {
    hosts: 2,
    withDocker: true,
    nodeTimeoutSeconds: 6,
    commands: {
      agent: (x) => [...defaultCommands.agent(x), ...everywhere],
      plugin: (x) => [...defaultCommands.plugin(x), ...everywhere],
      containerAgent: ({ agentConfig, dockerSocket }) => [
        process.execPath,
        path.join(REPO_ROOT, 'packages/container-agent/dist/main.js'),
        '--agent-config',
        agentConfig,
        '--docker-socket',
        dockerSocket,
        '--resync',
        '2',
        ...everywhere,
      ],
    },
  },
  async (started) => {
    cluster = started;
    [a, b] = cluster.hosts as [ClusterHost, ClusterHost];
    await a.startContainerAgent();
    promDir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-e2e-prometheus-'));
    fs.writeFileSync(path.join(promDir, 'prometheus.yml'), prometheusConfig(cluster));
    promUrl = `http://${cluster.layout.controlRootAddress}:${PROMETHEUS_PORT}`;
    promPid = spawnDetached(
      [
        ...inNetns(cluster.layout.controlNetns),
        'prometheus',
        `--config.file=${path.join(promDir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${path.join(promDir, 'data')}`,
        `--web.listen-address=0.0.0.0:${PROMETHEUS_PORT}`,
        '--log.level=warn',
      ],
      path.join(promDir, 'prometheus.log'),
    );
    await waitFor(
      'Prometheus to scrape every Flocker process',
      async () => {
        if (promPid === undefined || !isAlive(promPid))
          throw new Error(`prometheus exited: ${fs.readFileSync(path.join(promDir, 'prometheus.log'), 'utf8')}`);
        const up = await query('up').catch(() => []);
        // control + 2 agents + 2 plugins + 1 container agent
        return up.length === 6 && up.every((s) => s.value[1] === '1') ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 250, context: () => 'not every target is up' },
    );
  },
  async () => {
    await stopPid(promPid, 'SIGTERM');
    if (promDir !== undefined) removeTree(promDir);
  },
);

describe('metrics and health in a real cluster, scraped by a real Prometheus', () => {
  it('scrapes every process; process info and certificate expiry of each', async () => {
    const info = await query('flocker_process_info');
    expect(info.map((s) => `${s.metric['job']} ${s.metric['process']}`).sort()).toEqual([
      'flocker-container-agent container-agent',
      'flocker-control control-service',
      'flocker-dataset-agent dataset-agent',
      'flocker-dataset-agent dataset-agent',
      'flocker-docker-plugin docker-plugin',
      'flocker-docker-plugin docker-plugin',
    ]);
    // Every process holds a certificate issued for the cluster; none expires within 30 days.
    const expiry = await query('flocker_certificate_expiry_timestamp_seconds - time()');
    expect(new Set(expiry.map((s) => s.metric['job']))).toEqual(
      new Set(['flocker-control', 'flocker-dataset-agent', 'flocker-docker-plugin', 'flocker-container-agent']),
    );
    for (const s of expiry) expect(Number(s.value[1])).toBeGreaterThan(30 * 86400);
    expect(await scalar('flocker_nodes{state="alive"}')).toBe(2);
    // The rules are loaded, none firing in a healthy cluster.
    const rules = (await (await fetch(`${promUrl}/api/v1/rules`)).json()) as {
      data: { groups: { rules: { name: string; state: string }[] }[] };
    };
    const loaded = rules.data.groups.flatMap((g) => g.rules);
    expect(loaded.map((r) => r.name)).toEqual(expect.arrayContaining(['FlockerNodeDead', 'FlockerStoreWriteFailures']));
    expect(loaded.filter((r) => r.state === 'firing')).toEqual([]);
  });

  it('a create, a Docker mount and a move show up in the expected series', async () => {
    const series = {
      creates: 'flocker_api_requests_total{route="/v1/configuration/datasets",method="POST",status="201"}',
      commits: 'flocker_store_commit_duration_seconds_count{result="ok"}',
      createStep: `flocker_convergence_step_duration_seconds_count{kind="create",result="ok",instance="${a.address}:${PORTS.agent}"}`,
      mountA: `flocker_convergence_step_duration_seconds_count{kind="mount",result="ok",instance="${a.address}:${PORTS.agent}"}`,
      mountB: `flocker_convergence_step_duration_seconds_count{kind="mount",result="ok",instance="${b.address}:${PORTS.agent}"}`,
      detachA: `flocker_convergence_step_duration_seconds_count{kind="detach",result="ok",instance="${a.address}:${PORTS.agent}"}`,
      pluginMount: `flocker_plugin_request_duration_seconds_count{method="VolumeDriver.Mount",result="ok",instance="${a.address}:${PORTS.plugin}"}`,
      mountWait: `flocker_plugin_mount_wait_seconds_count{instance="${a.address}:${PORTS.plugin}"}`,
    };
    const before: Record<string, number> = {};
    for (const [k, expr] of Object.entries(series)) before[k] = await scalar(expr);
    const grew = (k: keyof typeof series) => eventually(`${k} to grow`, series[k], (v) => v > (before[k] ?? 0));

    // Create on a: API request, store commit, the agent's create and mount steps, and the volume's gauges.
    const d = await cluster.client.createDataset({
      primary: a.requireNodeUuid(),
      maximum_size: TEST_DATASET_SIZE,
      metadata: { name: 'metrics-move' },
    });
    await waitForMountedOn(cluster.client, d.dataset_id, a.requireNodeUuid());
    await grew('creates');
    await grew('commits');
    await grew('createStep');
    await grew('mountA');
    await eventually(
      'the volume on a in the per-volume gauges',
      `flocker_volume_maximum_bytes{dataset="${d.dataset_id}",instance="${a.address}:${PORTS.agent}"}`,
      (v) => v === TEST_DATASET_SIZE,
    );
    await eventually(
      'its used bytes',
      `flocker_volume_used_bytes{dataset="${d.dataset_id}"}`,
      (v) => v > 0 && v < TEST_DATASET_SIZE,
    );
    await eventually('nothing converging', 'flocker_datasets_converging', (v) => v === 0);
    // No dataset id on any histogram.
    expect(await query(`{__name__=~".*_bucket", dataset!=""}`)).toEqual([]);

    // A Docker volume through the plugin on a: request latency by Docker method and the mount wait.
    const run = await a.docker(
      [
        'run',
        '--rm',
        '--network',
        'none',
        '-v',
        'metrics-docker:/data',
        `--volume-driver=${VOLUME_DRIVER}`,
        TINY_IMAGE,
        'sh',
        '-c',
        'echo hi > /data/f',
      ],
      { check: false, timeoutMs: 60_000 },
    );
    expect(run.stderr).toBe('');
    await grew('pluginMount');
    await grew('mountWait');

    // Move to b: detach on a, mount on b; the lease count follows the volume.
    await cluster.client.updateDataset(d.dataset_id, { primary: b.requireNodeUuid() });
    await waitForMountedOn(cluster.client, d.dataset_id, b.requireNodeUuid());
    await grew('detachA');
    await grew('mountB');
    await eventually(
      'the volume on b in the gauges',
      `flocker_volumes{state="mounted",instance="${b.address}:${PORTS.agent}"}`,
      (v) => v >= 1,
    );
    expect(
      await scalar(`flocker_volume_maximum_bytes{dataset="${d.dataset_id}",instance="${a.address}:${PORTS.agent}"}`),
    ).toBe(0);
    // The control service's request series use route templates: the dataset's id appears in none.
    expect(await query(`flocker_api_requests_total{route=~".*${d.dataset_id}.*"}`)).toEqual([]);
  });

  it('/healthz and /readyz of every process; an agent is not ready while the control service is down', async () => {
    const control = await curlIn('control', `http://127.0.0.1:${PORTS.control}/readyz`);
    expect(control.status).toBe(200);
    expect(JSON.parse(control.body)).toMatchObject({
      status: 'ready',
      failed: [],
      checks: [{ name: 'store', ok: true }],
    });
    for (const port of [PORTS.agent, PORTS.plugin]) {
      expect((await curlIn(a, `http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      expect((await curlIn(b, `http://127.0.0.1:${port}/readyz`)).status).toBe(200);
    }
    const agentReady = JSON.parse((await curlIn(a, `http://127.0.0.1:${PORTS.agent}/readyz`)).body) as unknown;
    expect(agentReady).toMatchObject({ failed: [], checks: [{ name: 'control' }, { name: 'driver' }] });
    expect((await curlIn(a, `http://127.0.0.1:${PORTS.containerAgent}/readyz`)).status).toBe(200);

    await cluster.killControl('SIGKILL');
    try {
      const down = await curlIn(a, `http://127.0.0.1:${PORTS.agent}/readyz`);
      expect(down.status).toBe(503);
      expect(JSON.parse(down.body)).toMatchObject({
        status: 'not ready',
        failed: ['control'],
        description: 'not ready: control failed',
      });
      expect((await curlIn(b, `http://127.0.0.1:${PORTS.plugin}/readyz`)).status).toBe(503);
      // Alive all the same: a liveness probe must not restart an agent because the control service is away.
      expect((await curlIn(a, `http://127.0.0.1:${PORTS.agent}/healthz`)).status).toBe(200);
      await eventually('Prometheus to see the control service down', 'up{job="flocker-control"}', (v) => v === 0);
    } finally {
      await cluster.startControl();
    }
    await waitFor(
      'the agent to be ready again',
      async () => ((await curlIn(a, `http://127.0.0.1:${PORTS.agent}/readyz`)).status === 200 ? true : undefined),
      { timeoutMs: 15_000, intervalMs: 250 },
    );
  });

  it('promtool accepts the alert rules and their unit tests pass; every dashboard query parses', async () => {
    await expect(exec('promtool', ['check', 'rules', RULES])).resolves.toMatchObject({
      stdout: expect.stringContaining('SUCCESS'),
    });
    await expect(
      exec('promtool', ['test', 'rules', RULES_TEST], { cwd: path.dirname(RULES_TEST) }),
    ).resolves.toMatchObject({ stdout: expect.stringContaining('SUCCESS') });
    const dashboard = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8')) as {
      panels: { title: string; targets?: { expr: string }[] }[];
    };
    const exprs = dashboard.panels.flatMap((p) =>
      (p.targets ?? []).map((t) => t.expr.replaceAll('$__rate_interval', '1m')),
    );
    expect(exprs.length).toBeGreaterThan(20);
    for (const expr of exprs) await expect(query(expr)).resolves.toBeDefined();
    // The series the dashboard's main panels read exist in this cluster (over the last minutes: the control
    // service was restarted by the test before).
    for (const name of [
      'flocker_api_requests_total',
      'flocker_convergence_step_duration_seconds_bucket',
      'flocker_volumes',
    ])
      expect((await query(`max_over_time(${name}[5m])`)).length).toBeGreaterThan(0);
  });
});
