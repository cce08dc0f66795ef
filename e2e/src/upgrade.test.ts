/**
 * Install and upgrade from the Debian packages (packaging/deb/build.sh): version N and N+1 of
 * flocker-control, flocker-node and flocker-cli (same code, two versions) are installed with the
 * real dpkg into a temporary root (`dpkg --root`, maintainer scripts run chrootless with
 * DPKG_ROOT, as for a bootstrap). The installed wrappers start the control service (file store
 * in the root's /var/lib/flocker), a dataset agent (loopback backend: real loop devices and
 * mounts) and the Docker plugin (its socket asked directly); a dataset is written, N+1 is installed over N while they run, all three restart as
 * `systemctl try-restart` would, and the dataset, its data and its mount are intact; the
 * store's format version is read back by N+1 (its migration chain runs on load); a conffile
 * edited by the admin survives; purge keeps the store.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { request } from 'node:http';
import { createInterface } from 'node:readline';
import { z } from 'zod';
import { FlockerClient } from '@flocker/api';
import { waitFor } from './cluster/run';
import { mountsUnder, releaseMountsAndLoops } from './localAgents';
import { removeTree } from './removeTree';

jest.setTimeout(240_000);

const REPO = resolve(__dirname, '../..');
const N = '1.0.0';
const N1 = '1.0.1';
const MiB = 1024 * 1024;
const Listening = z.object({ listening: z.string(), port: z.number() });
const StoredHead = z.object({ format_version: z.number(), version: z.number() }).loose();

let dir = '';
let root = '';
let debs = '';
const procs = new Set<ChildProcess>();

function sh(cmd: string, args: readonly string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * dpkg on the temporary root; maintainer scripts run on the host with DPKG_ROOT set. No fsync
 * per file (--force-unsafe-io): a throw-away root, and it makes the test ~4 times faster.
 */
function dpkg(...args: string[]): string {
  return sh('dpkg', [`--root=${root}`, '--force-script-chrootless', '--force-unsafe-io', '--no-debsig', ...args]);
}

function installed(pkg: string): string {
  return sh('dpkg-query', [`--root=${root}`, '-W', '-f=${Version} ${db:Status-Abbrev}', pkg]).trim();
}

function debsOf(version: string): string[] {
  return [
    join(debs, `flocker-control_${version}_amd64.deb`),
    join(debs, `flocker-node_${version}_amd64.deb`),
    join(debs, `flocker-cli_${version}_amd64.deb`),
  ];
}

function logTail(): string {
  return ['control', 'agent', 'plugin']
    .map((n) => join(dir, `${n}.log`))
    .filter((f) => existsSync(f))
    .map((f) => `--- ${f}\n${readFileSync(f, 'utf8').split('\n').slice(-15).join('\n')}`)
    .join('\n');
}

function spawnInstalled(bin: string, args: readonly string[], log: string): ChildProcess {
  const proc = spawn(join(root, 'usr/bin', bin), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = createWriteStream(join(dir, `${log}.log`), { flags: 'a' });
  proc.stderr?.pipe(out);
  procs.add(proc);
  proc.once('exit', () => procs.delete(proc));
  return proc;
}

async function stop(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const gone = new Promise<void>((res) => proc.once('exit', () => res()));
  proc.kill('SIGTERM');
  await gone;
}

/** The installed flocker-control on the root's /var/lib/flocker, on `port` (0 = any). */
async function startControl(port: number): Promise<{ proc: ChildProcess; url: string; port: number }> {
  const proc = spawnInstalled(
    'flocker-control',
    [
      '--insecure-http',
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--data-dir',
      join(root, 'var/lib/flocker'),
      '--metrics-port',
      '0',
      // Fold the log into the snapshot after every commit: N+1 then loads both from N.
      '--compact-log-bytes',
      '1',
      '--log-level',
      'warn',
    ],
    'control',
  );
  const lines = createInterface({ input: proc.stdout as NodeJS.ReadableStream });
  const listening = await new Promise<z.infer<typeof Listening>>((res, rej) => {
    proc.once('exit', (code) => rej(new Error(`flocker-control exited with ${String(code)}\n${logTail()}`)));
    lines.once('line', (line) => res(Listening.parse(JSON.parse(line))));
  });
  return { proc, url: listening.listening, port: listening.port };
}

/** The installed Docker plugin on a socket of this test (no dockerd: --docker-socket none). */
function startPlugin(): ChildProcess {
  return spawnInstalled(
    'flocker-docker-plugin',
    [
      '--agent-config',
      join(root, 'etc/flocker/agent.yml'),
      '--socket',
      join(dir, 'flocker.sock'),
      '--docker-socket',
      'none',
      '--metrics-port',
      '0',
    ],
    'plugin',
  );
}

const VolumeList = z.object({ Volumes: z.array(z.object({ Name: z.string() }).loose()), Err: z.string().optional() });

/** POST /VolumeDriver.List on the plugin's socket: the volume names it answers. */
function pluginVolumes(): Promise<string[]> {
  return new Promise((res, rej) => {
    const req = request(
      { socketPath: join(dir, 'flocker.sock'), path: '/VolumeDriver.List', method: 'POST', timeout: 5_000 },
      (resp) => {
        let body = '';
        resp.setEncoding('utf8');
        resp.on('data', (c: string) => (body += c));
        resp.on('end', () => {
          try {
            res(VolumeList.parse(JSON.parse(body)).Volumes.map((v) => v.Name));
          } catch (err) {
            rej(err instanceof Error ? err : new Error(String(err)));
          }
        });
      },
    );
    req.on('error', rej);
    req.end('{}');
  });
}

function startAgent(): ChildProcess {
  return spawnInstalled('flocker-dataset-agent', ['--config', join(root, 'etc/flocker/agent.yml')], 'agent');
}

/** The format versions on disk: the log's header line and the snapshot's format_version (once one is written). */
function storeFormats(): { log: number; snapshot?: number; version?: number } {
  const data = join(root, 'var/lib/flocker');
  const header = /^flocker-configuration-log (\d+)\n/.exec(readFileSync(join(data, 'configuration.log'), 'utf8'));
  const snapshotFile = join(data, 'current_configuration.json');
  const snapshot = existsSync(snapshotFile)
    ? StoredHead.parse(JSON.parse(readFileSync(snapshotFile, 'utf8')))
    : undefined;
  return {
    log: Number(header?.[1]),
    ...(snapshot !== undefined ? { snapshot: snapshot.format_version, version: snapshot.version } : {}),
  };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'flk-upgrade-'));
  root = join(dir, 'root');
  debs = join(dir, 'debs');
  // Same code, two versions; the workspace is already compiled (scripts/test.sh runs tsc -b first).
  execFileSync(
    'bash',
    [join(REPO, 'packaging/deb/build.sh'), '--no-compile', '--out', debs, '--version', N, '--version', N1],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  // An empty dpkg database, plus the host's entries for the libraries and tools the packages
  // depend on: the installed binaries run on this host and use its libc, mount and mkfs.
  const admin = join(root, 'var/lib/dpkg');
  for (const d of ['updates', 'info', 'triggers']) mkdirSync(join(admin, d), { recursive: true });
  writeFileSync(join(admin, 'available'), '');
  const hostEntries = sh('dpkg-query', ['-s', 'libc6', 'libgcc-s1', 'libstdc++6', 'util-linux', 'e2fsprogs']);
  writeFileSync(join(admin, 'status'), hostEntries.endsWith('\n') ? `${hostEntries}\n` : `${hostEntries}\n\n`);
});

afterAll(async () => {
  for (const p of [...procs]) {
    p.kill('SIGKILL');
  }
  await new Promise((r) => setTimeout(r, 200));
  if (dir !== '') {
    if (existsSync(join(dir, 'node'))) releaseMountsAndLoops(join(dir, 'node'));
    removeTree(dir);
  }
});

describe('Debian packages: install N, upgrade to N+1, purge', () => {
  test('install N: runtime, services, CLI, units, conffiles and directories in place', () => {
    const runtime = readdirSync(debs).find((f) => f.startsWith('flocker-nodejs_'));
    expect(runtime).toBeDefined();
    dpkg('-i', join(debs, runtime!));
    dpkg('-i', ...debsOf(N));
    for (const p of ['flocker-control', 'flocker-node', 'flocker-cli']) expect(installed(p)).toBe(`${N} ii`);
    for (const bin of [
      'flocker-control',
      'flocker-dataset-agent',
      'flocker-docker-plugin',
      'flocker-container-agent',
      'flocker',
      'flocker-ca',
      'flocker-deploy',
    ])
      expect(statSync(join(root, 'usr/bin', bin)).mode & 0o111).not.toBe(0);
    for (const unit of ['flocker-control', 'flocker-dataset-agent', 'flocker-docker-plugin', 'flocker-container-agent'])
      expect(existsSync(join(root, 'lib/systemd/system', `${unit}.service`))).toBe(true);
    expect(readFileSync(join(root, 'var/lib/dpkg/info/flocker-node.conffiles'), 'utf8')).toContain(
      '/etc/flocker/agent.yml.example',
    );
    expect(readFileSync(join(root, 'var/lib/dpkg/info/flocker-control.conffiles'), 'utf8')).toContain(
      '/etc/default/flocker-control',
    );
    // postinst made the state directory private.
    expect(statSync(join(root, 'var/lib/flocker')).mode & 0o777).toBe(0o700);
    // The maintainer scripts are idempotent: configure again (as after an interrupted upgrade) succeeds, changes nothing.
    for (const p of ['flocker-control', 'flocker-node'])
      execFileSync(join(root, `var/lib/dpkg/info/${p}.postinst`), ['configure', N], {
        env: { ...process.env, DPKG_ROOT: root },
      });
    expect(statSync(join(root, 'var/lib/flocker')).mode & 0o777).toBe(0o700);
    // The bundled Node 24 runs every installed program (each loads its whole module graph first).
    expect(sh(join(root, 'usr/bin/flocker'), ['--help'])).toContain('flocker');
    for (const bin of ['flocker-ca', 'flocker-deploy', 'flocker-container-agent', 'flocker-control'])
      sh(join(root, 'usr/bin', bin), ['--help']);
  });

  let controlPort = 0;
  let datasetId = '';
  let mountPath = '';
  let control: { proc: ChildProcess; url: string } | undefined;
  let agent: ChildProcess | undefined;
  let plugin: ChildProcess | undefined;
  const client = (): FlockerClient => new FlockerClient({ baseUrl: control!.url });

  test('N runs: the installed control service, dataset agent and Docker plugin serve a mounted, written dataset', async () => {
    const started = await startControl(0);
    control = started;
    controlPort = started.port;
    const node = join(dir, 'node');
    mkdirSync(node, { recursive: true });
    writeFileSync(join(node, 'era'), 'era-upgrade\n');
    // The packaged example, filled in for this bed.
    const example = readFileSync(join(root, 'etc/flocker/agent.yml.example'), 'utf8');
    expect(example).toContain('control-service:');
    writeFileSync(
      join(root, 'etc/flocker/agent.yml'),
      [
        'version: 1',
        `control-service: {hostname: 127.0.0.1, port: ${controlPort}}`,
        `dataset: {backend: loopback, root_path: ${join(node, 'pool')}}`,
        `node: {state_dir: ${join(node, 'state')}, mount_root: ${join(node, 'mnt')}, era_file: ${join(node, 'era')}}`,
        'agent: {resync_interval_seconds: 2, default_dataset_size: 67108864, backoff_initial_seconds: 0.2, backoff_max_seconds: 2}',
        '',
      ].join('\n'),
    );
    agent = startAgent();
    const uuid = await waitFor('the agent to register', async () => (await client().listNodes())[0]?.uuid, {
      timeoutMs: 30_000,
      context: logTail,
    });
    datasetId = (await client().createDataset({ primary: uuid, maximum_size: 64 * MiB, metadata: { name: 'keep' } }))
      .dataset_id;
    mountPath = await waitFor(
      'the dataset to be mounted',
      async () => (await client().listDatasetState()).find((s) => s.dataset_id === datasetId)?.path,
      { timeoutMs: 60_000, context: logTail },
    );
    writeFileSync(join(mountPath, 'data.txt'), 'written by N\n');
    // The agent reports the installed release: version skew is visible in the node list.
    expect((await client().listNodes())[0]?.version).toBe(N);
    // The installed Docker plugin answers Docker's volume API with the volume.
    plugin = startPlugin();
    await waitFor('the plugin to list the volume', async () => (await pluginVolumes()).includes('keep'), {
      timeoutMs: 30_000,
      context: logTail,
    });
    execFileSync('sync');
    await waitFor('N to write a snapshot', () => storeFormats().snapshot !== undefined, { context: logTail });
    expect(storeFormats()).toMatchObject({ log: 1, snapshot: 1 });
  });

  test('upgrade to N+1 while running: dataset, data, mount, plugin volume and edited conffile intact; store read by N+1', async () => {
    const before = storeFormats();
    // The admin edited a conffile; dpkg keeps the edit (the package's copy did not change).
    const defaults = join(root, 'etc/default/flocker-control');
    writeFileSync(defaults, `${readFileSync(defaults, 'utf8')}# edited by the admin\n`);

    dpkg('-i', ...debsOf(N1));
    for (const p of ['flocker-control', 'flocker-node', 'flocker-cli']) expect(installed(p)).toBe(`${N1} ii`);
    expect(readFileSync(defaults, 'utf8')).toContain('# edited by the admin');

    // What postinst's try-restart does under systemd: the control service, then the agent.
    await stop(control!.proc);
    control = await startControl(controlPort);
    await stop(agent!);
    agent = startAgent();
    await stop(plugin!);
    plugin = startPlugin();

    const datasets = await client().listDatasets();
    expect(datasets.map((d) => d.dataset_id)).toContain(datasetId);
    // N+1 loaded N's store: the same configuration version, the current format.
    const after = storeFormats();
    expect(after.version).toBeGreaterThanOrEqual(before.version ?? 0);
    expect(after).toMatchObject({ log: 1, snapshot: 1 });
    // Still mounted where it was (the restart did not unmount it) and the agent still reports it.
    expect(mountsUnder(join(dir, 'node')).map((m) => m.mountPoint)).toContain(mountPath);
    await waitFor(
      'N+1 agent to report the dataset mounted',
      async () =>
        (await client().listDatasetState()).find((s) => s.dataset_id === datasetId)?.path === mountPath || undefined,
      { timeoutMs: 30_000, context: logTail },
    );
    expect(readFileSync(join(mountPath, 'data.txt'), 'utf8')).toBe('written by N\n');
    writeFileSync(join(mountPath, 'after.txt'), 'written after the upgrade\n');
    await waitFor('the agent to report release N+1', async () => (await client().listNodes())[0]?.version === N1, {
      timeoutMs: 30_000,
      context: logTail,
    });
    await waitFor('N+1 plugin to list the volume', async () => (await pluginVolumes()).includes('keep'), {
      timeoutMs: 30_000,
      context: logTail,
    });
    const second = await client().createDataset({
      primary: datasets[0]!.primary,
      maximum_size: 64 * MiB,
      metadata: { name: 'new' },
    });
    await waitFor(
      'a dataset created on N+1 to be mounted',
      async () => (await client().listDatasetState()).find((s) => s.dataset_id === second.dataset_id)?.path,
      { timeoutMs: 60_000, context: logTail },
    );
  });

  test('a store of a newer format (a downgrade) is refused at start, not misread', () => {
    const copy = join(dir, 'newer-store');
    execFileSync('cp', ['-a', join(root, 'var/lib/flocker'), copy]);
    const snapshotFile = join(copy, 'current_configuration.json');
    const doc = z.record(z.string(), z.unknown()).parse(JSON.parse(readFileSync(snapshotFile, 'utf8')));
    writeFileSync(snapshotFile, JSON.stringify({ ...doc, format_version: 2 }));
    const r = spawnSync(
      join(root, 'usr/bin/flocker-control'),
      ['--insecure-http', '--host', '127.0.0.1', '--port', '0', '--data-dir', copy, '--metrics-port', '0'],
      { encoding: 'utf8', timeout: 30_000 },
    );
    expect(r.status).not.toBe(0);
    expect(`${r.stdout}${r.stderr}`).toContain('STORE_FORMAT_TOO_NEW');
  });

  test('purge removes the programs and keeps the configuration store', async () => {
    await stop(plugin!);
    await stop(agent!);
    await stop(control!.proc);
    dpkg('-P', 'flocker-cli', 'flocker-node', 'flocker-control', 'flocker-nodejs');
    expect(existsSync(join(root, 'usr/lib/flocker'))).toBe(false);
    expect(existsSync(join(root, 'usr/bin/flocker-control'))).toBe(false);
    expect(existsSync(join(root, 'etc/default/flocker-control'))).toBe(false);
    expect(storeFormats()).toMatchObject({ log: 1, snapshot: 1 });
  });
});
