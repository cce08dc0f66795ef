/**
 * Containers that move with their volumes, end to end on two simulated hosts:
 * flocker-deploy puts a "database" (busybox httpd serving a file from its Flocker
 * volume) on host A and a client linked to it on host B; the client reads the
 * database through the link's environment variables. Editing deployment.yml and
 * running flocker-deploy again moves the database, with its data, to B; the client
 * is recreated with the new link address and reads the same data.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { containerConfigId } from '@flocker/api';
import { REPO_ROOT, run, TINY_IMAGE, waitFor, type Cluster, type ClusterHost } from './cluster';
import { clusterForSuite } from './cluster/suite';

jest.setTimeout(300_000);

let cluster: Cluster;
let a: ClusterHost;
let b: ClusterHost;
let dir: string;

const DEPLOY_BIN = path.join(REPO_ROOT, 'packages/cli/dist/flocker-deploy.js');
const CLI_MAIN = path.join(REPO_ROOT, 'packages/cli/dist/main.js');

clusterForSuite(
  { hosts: 2, withDocker: true, nodeTimeoutSeconds: 5 },
  async (started) => {
    cluster = started;
    [a, b] = cluster.hosts as [ClusterHost, ClusterHost];
    await Promise.all(cluster.hosts.map((h) => h.startContainerAgent()));
    dir = fs.mkdtempSync(path.join(cluster.baseDir, 'deploy-'));
  },
  async () => {
    // Remove the containers first so their volumes are released before teardown.
    await run(
      [
        process.execPath,
        DEPLOY_BIN,
        cluster.layout.controlUrl,
        write('empty.yml', 'version: 1\nnodes: {}\n'),
        write('application.yml', APPLICATIONS),
      ],
      {
        env: { ...process.env, ...cluster.cliEnv() },
        check: false,
      },
    );
    await waitFor(
      'containers removed',
      async () => ((await cluster.client.listContainerState()).length === 0 ? true : undefined),
      { timeoutMs: 60_000, intervalMs: 250 },
    ).catch(() => undefined);
    // FLOCKER_E2E_KEEP_LOGS=<dir> keeps each host's container-agent/plugin/agent logs for a look afterwards.
    const keep = process.env.FLOCKER_E2E_KEEP_LOGS;
    if (keep !== undefined) {
      for (const h of cluster.hosts) fs.cpSync(h.layout.logDir, path.join(keep, h.name), { recursive: true });
    }
  },
);

function write(name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

const SERVER = 'trap "exit 0" TERM; httpd -f -p 8080 -h /data & wait';
const CLIENT =
  'trap "exit 0" TERM; while true; do printf "GET /value.txt HTTP/1.0\\r\\n\\r\\n" | nc -w 2 $DB_PORT_8080_TCP_ADDR $DB_PORT_8080_TCP_PORT ' +
  '> /tmp/got 2>&1 && cp /tmp/got /tmp/last; sleep 1 & wait; done';

// YAML is a superset of JSON: the shell scripts go in as JSON strings.
const APPLICATIONS = `version: 1
applications:
  db:
    image: ${TINY_IMAGE}
    ports:
      - internal: 8080
        external: 18080
    volume:
      mountpoint: /data
      maximum_size: 64MiB
    restart_policy:
      name: always
    command_line: ["sh", "-c", ${JSON.stringify(SERVER)}]
  client:
    image: ${TINY_IMAGE}
    links:
      - alias: db
        local_port: 8080
        remote_port: 18080
    command_line: ["sh", "-c", ${JSON.stringify(CLIENT)}]
`;

async function flockerDeploy(
  deployment: string,
  application = APPLICATIONS,
  extra: string[] = ['--wait', '--timeout', '150'],
) {
  return run(
    [
      process.execPath,
      DEPLOY_BIN,
      cluster.layout.controlUrl,
      write('deployment.yml', deployment),
      write('application.yml', application),
      ...extra,
    ],
    {
      env: { ...process.env, ...cluster.cliEnv() },
      check: false,
      timeoutMs: 200_000,
    },
  );
}

async function hostOf(h: ClusterHost): Promise<string> {
  const uuid = h.requireNodeUuid();
  const node = (await cluster.client.listNodes()).find((n) => n.uuid === uuid);
  if (node === undefined) throw new Error(`node of host ${h.name} is not alive`);
  return node.host;
}

/** What the client container last read from the database, once it has read something. */
async function clientRead(): Promise<string | undefined> {
  const r = await b.docker(['exec', 'client', 'cat', '/tmp/last'], { check: false });
  return r.code === 0 && r.stdout.includes('200 OK') ? r.stdout : undefined;
}

describe('containers move with their volumes (flocker-deploy, container agents)', () => {
  it('deploys a linked two-container application, moves the database with its data, and the client reconnects', async () => {
    const [hostA, hostB] = [await hostOf(a), await hostOf(b)];

    const first = await flockerDeploy(`version: 1\nnodes:\n  ${hostA}: [db]\n  ${hostB}: [client]\n`);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toContain(`db: ${TINY_IMAGE} on ${hostA}`);

    expect((await a.docker(['inspect', '-f', '{{.HostConfig.RestartPolicy.Name}}', 'db'])).stdout.trim()).toBe(
      'always',
    );
    expect((await b.docker(['inspect', '-f', '{{.HostConfig.RestartPolicy.Name}}', 'client'])).stdout.trim()).toBe(
      'no',
    );

    // Write data into the database's volume on A; the client on B reads it through the link.
    await a.docker(['exec', 'db', 'sh', '-c', 'echo precious-$(hostname) > /data/value.txt; sync']);
    const env = (await b.docker(['exec', 'client', 'env'])).stdout;
    expect(env).toContain(`DB_PORT_8080_TCP=tcp://${hostA}:18080`);
    expect(env).toContain(`DB_PORT_8080_TCP_ADDR=${hostA}`);
    const before = await waitFor(
      'the client to read from the database on A',
      async () => {
        const got = await clientRead();
        return got?.includes('precious-') ? got : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    const written = /precious-\S+/.exec(before)?.[0];
    expect(written).toBeDefined();

    const state = await cluster.client.listContainerState();
    expect(state).toEqual(
      expect.arrayContaining([
        // (with the configuration each runs and the report's time, where the control service gives them)
        expect.objectContaining({ name: 'db', node_uuid: a.requireNodeUuid(), image: TINY_IMAGE, running: true }),
        expect.objectContaining({ name: 'client', node_uuid: b.requireNodeUuid(), image: TINY_IMAGE, running: true }),
      ]),
    );

    // Move the database to B by editing the deployment file and deploying again.
    const moved = await flockerDeploy(`version: 1\nnodes:\n  ${hostB}: [db, client]\n`);
    expect(moved.stderr).toBe('');
    expect(moved.code).toBe(0);
    expect(
      (await a.docker(['ps', '-a', '--filter', 'label=flocker.container', '--format', '{{.Names}}'])).stdout.trim(),
    ).toBe('');
    // Same data, now served from B (the file's content names host A, where it was written).
    expect((await b.docker(['exec', 'db', 'cat', '/data/value.txt'])).stdout.trim()).toBe(written);
    expect((await b.docker(['exec', 'client', 'env'])).stdout).toContain(`DB_PORT_8080_TCP_ADDR=${hostB}`);
    const after = await waitFor('the client to read from the database on B', clientRead, {
      timeoutMs: 60_000,
      intervalMs: 500,
    });
    expect(after).toContain(written);

    const datasets = await cluster.client.listDatasets();
    expect(datasets.find((d) => d.metadata['name'] === 'db')?.primary).toBe(b.requireNodeUuid());
    const containers = await cluster.client.listContainers();
    expect(containers.map((c) => [c.name, c.node_uuid])).toEqual([
      ['db', b.requireNodeUuid()],
      ['client', b.requireNodeUuid()],
    ]);
  });

  it('moving through the v1 API (POST /v1/configuration/containers/db) takes the data back to A', async () => {
    const value = (await b.docker(['exec', 'db', 'cat', '/data/value.txt'])).stdout.trim();
    expect((await cluster.client.moveContainer('db', { node_uuid: a.requireNodeUuid() })).node_uuid).toBe(
      a.requireNodeUuid(),
    );
    const onA = await waitFor(
      'db running on A',
      async () =>
        (await cluster.client.listContainerState()).find(
          (c) => c.name === 'db' && c.node_uuid === a.requireNodeUuid() && c.running,
        ),
      { timeoutMs: 120_000, intervalMs: 250 },
    );
    expect(onA.image).toBe(TINY_IMAGE);
    expect((await a.docker(['exec', 'db', 'cat', '/data/value.txt'])).stdout.trim()).toBe(value);
    const hostA = await hostOf(a);
    await waitFor(
      'the client to follow the link to A',
      async () => {
        const got = await clientRead().catch(() => undefined);
        const env = await b.docker(['exec', 'client', 'env'], { check: false });
        return got?.includes(value) && env.stdout.includes(`DB_PORT_8080_TCP_ADDR=${hostA}`) ? true : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );

    // A restarted container agent adopts what runs (same spec label): nothing is recreated.
    const id = (await a.docker(['inspect', '-f', '{{.Id}}', 'db'])).stdout.trim();
    await a.killContainerAgent('SIGTERM');
    await a.startContainerAgent();
    await new Promise((r) => setTimeout(r, 3_000));
    expect((await a.docker(['inspect', '-f', '{{.Id}} {{.State.Running}}', 'db'])).stdout.trim()).toBe(`${id} true`);
  });

  it('a missing image: --wait fails early with the reason, the state carries it, the agent backs off (issue 21)', async () => {
    const [hostA, hostB] = [await hostOf(a), await hostOf(b)];
    const missing = 'flocker-e2e-no-such-image:1';
    const withBroken = `${APPLICATIONS}  broken:\n    image: ${missing}\n`;
    const started = Date.now();
    const r = await flockerDeploy(`version: 1\nnodes:\n  ${hostA}: [db, broken]\n  ${hostB}: [client]\n`, withBroken);
    const tookMs = Date.now() - started;
    expect(r.stdout).toContain(`  + broken: ${missing} on ${hostA}`);
    expect(r.stdout).toContain(`  = db: ${TINY_IMAGE} on ${hostA}`);
    expect(r.stderr).toContain(`broken cannot start on ${hostA}: IMAGE_NOT_FOUND: No such image: ${missing}`);
    expect(r.code).toBe(1);
    // Not the --timeout of 150 s: the first report of the failure ends the wait.
    expect(tookMs).toBeLessThan(30_000);

    const errorOf = async () =>
      (await cluster.client.listContainerState()).find(
        (c) => c.name === 'broken' && c.node_uuid === a.requireNodeUuid(),
      )?.error;
    const first = await errorOf();
    expect(first).toMatchObject({ code: 'IMAGE_NOT_FOUND', message: `No such image: ${missing}` });
    // Backing off (1, 2, 4, 8 … s, jittered down to half): 15 s hold at most 6 tries, where retrying every
    // second made 15.
    await new Promise((res) => setTimeout(res, 15_000));
    const later = await errorOf();
    expect(later?.since).toBe(first?.since);
    const elapsedS = (Date.now() - Date.parse(first?.since ?? '')) / 1000;
    expect(elapsedS).toBeGreaterThan(14);
    expect(later?.attempts).toBeLessThanOrEqual(7);
    expect(later?.attempts).toBeGreaterThanOrEqual(3);
    // The other containers are untouched and running.
    const state = await cluster.client.listContainerState();
    expect(
      state
        .filter((c) => c.running)
        .map((c) => c.name)
        .sort(),
    ).toEqual(['client', 'db']);

    // --dry-run of the file without it: the plan says it would be removed, and nothing changes.
    const configured = await cluster.client.listContainers();
    const fixed = `version: 1\nnodes:\n  ${hostA}: [db]\n  ${hostB}: [client]\n`;
    const dry = await flockerDeploy(fixed, APPLICATIONS, ['--dry-run']);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain('plan: 0 to add, 0 to change, 1 to remove, 2 unchanged');
    expect(dry.stdout).toContain(
      `  - broken: ${missing} on ${hostA} (configured now, not in ${path.join(dir, 'deployment.yml')}: removed)`,
    );
    expect(dry.stdout).toContain('dry run: nothing changed');
    expect(await cluster.client.listContainers()).toEqual(configured);

    // Deployed for real: removed, and its error goes with it.
    const applied = await flockerDeploy(fixed);
    expect(applied.stderr).toBe('');
    expect(applied.code).toBe(0);
    await waitFor(
      'the error of a removed container to go',
      async () => ((await errorOf()) === undefined ? true : undefined),
      {
        timeoutMs: 30_000,
        intervalMs: 250,
      },
    );
  });

  it('a redeploy that changes the image on the same node: --wait does not count the old container (review T2 F4)', async () => {
    const [hostA, hostB] = [await hostOf(a), await hostOf(b)];
    const deployment = `version: 1\nnodes:\n  ${hostA}: [db]\n  ${hostB}: [client]\n`;
    const missing = 'flocker-e2e-no-such-image:2';
    const changed = APPLICATIONS.replace(/( {2}client:\n {4}image: )\S+/, `$1${missing}`);
    expect(changed).not.toBe(APPLICATIONS);
    const r = await flockerDeploy(deployment, changed);
    // Before: 'deployed: every container is running on its node', exit 0, from the old client's report.
    expect(r.stdout).toContain(`  ~ client: image ${TINY_IMAGE} → ${missing}`);
    expect(r.stdout).not.toContain('deployed: every container is running');
    expect(r.stderr).toContain(`client cannot start on ${hostB}: IMAGE_NOT_FOUND`);
    expect(r.code).toBe(1);
    // Back as it was: the client runs its image again, and --wait says so.
    const back = await flockerDeploy(deployment);
    expect(back.stderr).toBe('');
    expect(back.code).toBe(0);
    expect(back.stdout).toContain('deployed: every container is running on its node');
  });

  it('a redeploy that changes only the command: --wait does not count the old container (review T2 F4, the rest)', async () => {
    const [hostA, hostB] = [await hostOf(a), await hostOf(b)];
    const deployment = `version: 1\nnodes:\n  ${hostA}: [db]\n  ${hostB}: [client]\n`;
    // Same image, a command that cannot run: before, the old client's report (same image, running) ended the wait
    // at once with 'deployed', exit 0.
    const changed = APPLICATIONS.replace(
      `command_line: ["sh", "-c", ${JSON.stringify(CLIENT)}]`,
      'command_line: ["/flocker-e2e-no-such-binary"]',
    );
    expect(changed).not.toBe(APPLICATIONS);
    const r = await flockerDeploy(deployment, changed, ['--wait', '--timeout', '20']);
    expect(r.stdout).toContain('  ~ client:');
    expect(r.stdout).not.toContain('deployed: every container is running');
    expect(r.code).not.toBe(0);
    const back = await flockerDeploy(deployment);
    expect(back.stderr).toBe('');
    expect(back.code).toBe(0);
    expect(back.stdout).toContain('deployed: every container is running on its node');
    // What runs is reported with the configuration it runs.
    const configured = (await cluster.client.listContainers()).find((c) => c.name === 'client');
    const reported = (await cluster.client.listContainerState()).find((c) => c.name === 'client');
    expect(reported?.config).toBe(containerConfigId(configured!));
    expect(Date.now() - Date.parse(reported?.reported_at ?? '')).toBeLessThan(15_000);
  });

  it('a container agent that stopped reporting is named by containers show and --wait (review T2 F3, the rest)', async () => {
    const hostB = await hostOf(b);
    const hostA = await hostOf(a);
    await b.killContainerAgent('SIGKILL');
    try {
      // Past two report intervals (20 s), within the 30 s the control service still lists the report.
      await new Promise((res) => setTimeout(res, 23_000));
      const show = await run([process.execPath, CLI_MAIN, 'containers', 'show', 'client'], {
        env: { ...process.env, ...cluster.cliEnv() },
        check: false,
      });
      expect(show.stdout).toMatch(
        new RegExp(
          `State: +unknown \\(no report from the container agent on host ${hostB.replace(/\./g, '\\.')} since \\S+: is it running\\?; last reported running\\)`,
        ),
      );
      const changed = APPLICATIONS.replace('local_port: 8080', 'local_port: 8081');
      expect(changed).not.toBe(APPLICATIONS);
      const r = await flockerDeploy(`version: 1\nnodes:\n  ${hostA}: [db]\n  ${hostB}: [client]\n`, changed, [
        '--wait',
        '--timeout',
        '5',
      ]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(`client: no report from the container agent on host ${hostB}`);
      expect(r.stderr).toContain('is it running?');
    } finally {
      await b.startContainerAgent();
    }
    const back = await flockerDeploy(`version: 1\nnodes:\n  ${hostA}: [db]\n  ${hostB}: [client]\n`);
    expect(back.code).toBe(0);
  });

  it("a Compose file's name:/path volume is that Flocker volume, and moves with its container (issue 21)", async () => {
    const [hostA, hostB] = [await hostOf(a), await hostOf(b)];
    const compose = `services:\n  store:\n    image: ${TINY_IMAGE}\n    volumes: ["e2e-named:/srv/data"]\n    command: ["sh", "-c", ${JSON.stringify('trap "exit 0" TERM; sleep 100000 & wait')}]\n`;
    const onA = await flockerDeploy(`version: 1\nnodes:\n  ${hostA}: store\n`, compose);
    expect(onA.stderr).toBe('');
    expect(onA.code).toBe(0);
    // The previous applications are not in this file: the plan said they go.
    expect(onA.stdout).toMatch(/plan: 1 to add, 0 to change, 2 to remove, 0 unchanged/);
    const volume = (await cluster.client.listDatasets()).find((d) => d.metadata['name'] === 'e2e-named');
    expect(volume?.primary).toBe(a.requireNodeUuid());
    await a.docker(['exec', 'store', 'sh', '-c', 'echo kept > /srv/data/f; sync']);

    const onB = await flockerDeploy(`version: 1\nnodes:\n  ${hostB}: store\n`, compose);
    expect(onB.code).toBe(0);
    expect(onB.stdout).toContain(`  ~ store: node ${hostA} → ${hostB} (its volume moves with it)`);
    expect((await b.docker(['exec', 'store', 'cat', '/srv/data/f'])).stdout.trim()).toBe('kept');
    const datasets = (await cluster.client.listDatasets()).filter((d) => d.metadata['name'] === 'e2e-named');
    expect(datasets.map((d) => [d.dataset_id, d.primary])).toEqual([[volume?.dataset_id, b.requireNodeUuid()]]);
  });

  it('a bad file is refused with its line, and nothing changes', async () => {
    const before = await cluster.client.listContainers();
    const bad = await flockerDeploy(
      'version: 1\nnodes:\n  10.0.0.99: [db]\n',
      APPLICATIONS.replace('external: 18080', 'external: lots'),
      [],
    );
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/application\.yml:7:\d+: applications\.db\.ports\.0\.external: /);
    const compose = await flockerDeploy(
      'version: 1\nnodes:\n  10.0.0.99: [db]\n',
      APPLICATIONS.replace('command_line:', 'command:'),
      [],
    );
    expect(compose.code).toBe(2);
    expect(compose.stderr).toMatch(/applications\.db\.command: unknown key "command": the key is command_line/);
    expect(await cluster.client.listContainers()).toEqual(before);
  });
});
