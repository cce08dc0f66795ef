/**
 * End to end: csi-sanity (kubernetes-csi/csi-test, built from the Go module proxy, pinned,
 * cached outside the clone) against flocker-csi serving Identity, Controller and Node on one
 * Unix socket, on a real single-node Flocker cluster: the control service (in process) and a
 * dataset agent (spawned) on the loopback backend, real loop devices, ext4 and mounts; the
 * node plugin runs in this test's mount namespace, csi-sanity's dirs under a temp dir.
 */
import { spawn, execFile, execFileSync, type ChildProcess } from 'node:child_process';
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  statfsSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { FlockerClient } from '@flocker/api';
import { createCsiClient, grpcCode, TOPOLOGY_ZONE_KEY, type CsiClient } from '@flocker/csi-driver';
import { startControlService, type ControlService } from '@flocker/control-api';
import { killProcessGroups } from './cluster/processes';
import { waitFor } from './cluster/run';
import { mountsUnder, releaseMountsAndLoops } from './localAgents';
import { removeTree } from './removeTree';

jest.setTimeout(900_000);

const REPO = resolve(__dirname, '../..');
const CSI_PACKAGE = join(REPO, 'packages/csi-driver');
const AGENT_MAIN = join(REPO, 'packages/dataset-agent/dist/main.js');
const CSI_MAIN = join(CSI_PACKAGE, 'dist/main.js');
const MiB = 1024 * 1024;

let dir: string;
let control: ControlService;
const procs: ChildProcess[] = [];

function spawnLogged(name: string, args: string[]): ChildProcess {
  const log = createWriteStream(join(dir, `${name}.log`), { flags: 'a' });
  const proc = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, FLOCKER_LOG_LEVEL: 'debug' },
    detached: true, // a group of its own: afterAll ends it whole, with any losetup or mount it ran
  });
  proc.stdout?.pipe(log);
  proc.stderr?.pipe(log);
  procs.push(proc);
  return proc;
}

function logs(): string {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.log'))
    .map((f) => `--- ${f}\n${readFileSync(join(dir, f), 'utf8').split('\n').slice(-20).join('\n')}`)
    .join('\n');
}

interface JunitCounts {
  tests: number;
  failures: number;
  errors: number;
  skipped: number;
  /** "name: reason" of each skipped or pending spec. */
  skippedNames: string[];
  failedNames: string[];
}

function unescapeXml(s: string): string {
  return s
    .replace(/&#34;|&quot;/g, '"')
    .replace(/&#39;|&apos;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

/** Counts of csi-sanity's JUnit report (ginkgo writes one testsuite; each testcase has a status). */
function junitCounts(xml: string): JunitCounts {
  const suite = /<testsuite\s[^>]*>/.exec(xml)?.[0] ?? '';
  const attr = (n: string) => Number(new RegExp(`\\s${n}="(\\d+)"`).exec(suite)?.[1] ?? 'NaN');
  const cases = [...xml.matchAll(/<testcase\s([^>]*)>([\s\S]*?)<\/testcase>/g)].map((m) => {
    const head = m[1] as string;
    const name = unescapeXml(/name="([^"]*)"/.exec(head)?.[1] ?? '').replace(/^\[It\] /, '');
    const state = /status="([^"]*)"/.exec(head)?.[1] ?? '';
    const reason = unescapeXml(/<skipped message="([^"]*)"/.exec(m[2] as string)?.[1] ?? state);
    return { name, state, reason };
  });
  return {
    tests: attr('tests'),
    failures: attr('failures'),
    errors: attr('errors'),
    skipped: attr('skipped'),
    skippedNames: cases
      .filter((c) => c.state === 'skipped' || c.state === 'pending')
      .map((c) => `${c.name}: ${c.reason}`),
    failedNames: cases.filter((c) => !['passed', 'skipped', 'pending'].includes(c.state)).map((c) => c.name),
  };
}

/**
 * The only skips allowed: specs of capabilities this driver does not offer (see the
 * package README), and csi-test's own disabled pagination spec (XIt, "pending").
 */
const UNSUPPORTED = [
  'SNAPSHOT_ACCESSIBILITY_CONSTRAINTS',
  'Modify volume',
  'Modify Volume',
  'ControllerPublishVolume',
  'Controller Publish, UnpublishVolume',
  'ControllerUnpublishVolume',
  'ControllerModifyVolume',
  'GroupControllerService',
  'NodeExpandVolume',
  'NodeGetStorageHealth',
];
const ALLOWED_SKIP = new RegExp(
  `: skipped - (${UNSUPPORTED.join('|')}) not supported$|^ListVolumes pagination should detect .*: pending$`,
);

beforeAll(async () => {
  // The pinned csi.proto (Go module proxy) and csi-sanity (built once, cached by version).
  execFileSync('bash', [join(CSI_PACKAGE, 'scripts/fetch-proto.sh')], { stdio: 'inherit' });
  const sanity = execFileSync('bash', [join(CSI_PACKAGE, 'scripts/build-csi-sanity.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 1_200_000,
  }).trim();
  dir = mkdtempSync(join(tmpdir(), 'flocker-csi-e2e-'));
  writeFileSync(join(dir, 'sanity-bin'), sanity);
  control = await startControlService({
    port: 0,
    host: '127.0.0.1',
    dataDir: join(dir, 'control'),
    nodeTimeoutSeconds: 60,
    logLevel: 'error',
  });
  await startNode('a', 'all');
});

/** A dataset agent (loopback, shared pool) and flocker-csi beside it, serving on <dir>/csi-<name>.sock. */
async function startNode(name: string, mode: 'all' | 'node'): Promise<void> {
  mkdirSync(join(dir, name), { recursive: true });
  writeFileSync(join(dir, name, 'era'), `era-${name}\n`);
  writeFileSync(
    join(dir, `${name}.yml`),
    [
      'version: 1',
      `control-service: {hostname: 127.0.0.1, port: ${control.port}}`,
      `dataset: {backend: loopback, root_path: ${join(dir, 'pool')}}`,
      `node: {state_dir: ${join(dir, name, 'state')}, mount_root: ${join(dir, name, 'mnt')}, era_file: ${join(dir, name, 'era')}}`,
      'agent: {resync_interval_seconds: 2, default_dataset_size: 67108864, backoff_initial_seconds: 0.2, backoff_max_seconds: 2}',
      '',
    ].join('\n'),
  );
  const before = (await new FlockerClient({ baseUrl: control.url }).listNodes()).length;
  spawnLogged(`agent-${name}`, [AGENT_MAIN, '--config', join(dir, `${name}.yml`)]);
  // flocker-csi needs only the agent's node.json (its node id): it starts while the agent comes up and reports.
  await waitFor(`agent ${name}'s node.json`, () => existsSync(join(dir, name, 'state', 'node.json')), {
    timeoutMs: 60_000,
    context: logs,
  });
  if (mode === 'node') mkdirSync(registryOf(name), { recursive: true });
  spawnLogged(`csi-${name}`, [
    CSI_MAIN,
    '--endpoint',
    `unix://${socketOf(name)}`,
    '--mode',
    mode,
    '--control-url',
    control.url,
    '--state-dir',
    join(dir, name, 'state'),
    '--default-size',
    '64MiB',
    '--stage-timeout',
    '60',
    // Node b's refused stage (a holds the lease and keeps it) waited the default 10 s hand-over for a to let go.
    ...(mode === 'node' ? ['--kubelet-registration-dir', registryOf(name), '--handover-wait', '1'] : []),
  ]);
  const client = new FlockerClient({ baseUrl: control.url });
  await waitFor(`agent ${name} to report`, async () => (await client.listNodes()).length === before + 1, {
    timeoutMs: 60_000,
    context: logs,
  });
  await waitFor(`the CSI socket of ${name}`, () => existsSync(socketOf(name)), { timeoutMs: 30_000, context: logs });
}

/** Where a node's flocker-csi offers itself to the kubelet's plugin watcher. */
function registryOf(name: string): string {
  return join(dir, `${name}-plugins_registry`);
}

function socketOf(name: string): string {
  return join(dir, `csi-${name}.sock`);
}

function nodeUuid(name: string): string {
  return (JSON.parse(readFileSync(join(dir, name, 'state', 'node.json'), 'utf8')) as { uuid: string }).uuid;
}

const clients: CsiClient[] = [];

afterAll(async () => {
  for (const c of clients) c.close();
  const survivors = await killProcessGroups(procs.map((p) => p.pid));
  await control?.close();
  if (!dir) return;
  releaseMountsAndLoops(dir);
  if (process.env.FLOCKER_KEEP_CSI_E2E === undefined) removeTree(dir);
  if (survivors.length > 0) throw new Error(`processes still alive after SIGKILL: ${survivors.join(' ')}`);
});

describe('flocker-csi', () => {
  it('passes csi-sanity against a real single-node Flocker cluster (0 failed; skips are the capabilities it does not offer)', async () => {
    const sanity = readFileSync(join(dir, 'sanity-bin'), 'utf8');
    const junit = join(dir, 'junit.xml');
    const out = await new Promise<{ code: number; output: string }>((res) => {
      execFile(
        sanity,
        [
          `-csi.endpoint=${socketOf('a')}`,
          `-csi.mountdir=${join(dir, 'sanity-target')}`,
          `-csi.stagingdir=${join(dir, 'sanity-staging')}`,
          `-csi.testvolumesize=${64 * MiB}`,
          `-csi.testvolumeexpandsize=${128 * MiB}`,
          `-ginkgo.junit-report=${junit}`,
          '-ginkgo.timeout=12m',
        ],
        { maxBuffer: 64 * MiB, timeout: 840_000 },
        (err, stdout, stderr) =>
          res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, output: stdout + stderr }),
      );
    });
    writeFileSync(join(dir, 'sanity.log'), out.output);
    const counts = junitCounts(readFileSync(junit, 'utf8'));
    const summary =
      `csi-sanity: ${counts.tests} specs, ${counts.failures} failed, ${counts.errors} errors, ${counts.skipped} skipped\n` +
      `failed: ${counts.failedNames.join(' | ')}\nskipped:\n  ${counts.skippedNames.join('\n  ')}`;
    process.stdout.write(summary + '\n');
    if (counts.failures + counts.errors > 0 || out.code !== 0) {
      throw new Error(
        `${summary}\n${out.output
          .split('\n')
          .filter((l) => /\[FAIL\]|Expected|rpc error/.test(l))
          .slice(0, 60)
          .join('\n')}\n${logs()}`,
      );
    }
    expect(counts.tests).toBeGreaterThan(50);
    expect(
      counts.skippedNames.filter(
        (n) => !ALLOWED_SKIP.test(n.replace(/^Controller Service \[Controller Server\] /, '')),
      ),
    ).toEqual([]);
    // No volume stays mounted by the node plugin under csi-sanity's dirs.
    expect(mountsUnder(join(dir, 'sanity-target'))).toEqual([]);
    expect(mountsUnder(join(dir, 'sanity-staging'))).toEqual([]);
  });

  it('moves a volume between two nodes: one stage at a time (the lease), the data follows, read-only publish, volume stats, expansion', async () => {
    await startNode('b', 'node');
    const a = createCsiClient(socketOf('a'));
    const b = createCsiClient(socketOf('b'));
    clients.push(a, b);
    expect(await b.node.NodeGetInfo!({})).toMatchObject({ node_id: nodeUuid('b') });
    // The node plugin offers itself to the kubelet (plugin registration API) beside its CSI socket.
    await waitFor(
      'the kubelet registration socket',
      () => existsSync(join(registryOf('b'), 'flocker.clusterhq.io-reg.sock')),
      { timeoutMs: 10_000, context: logs },
    );
    const cap = { mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } };
    const created = (await a.controller.CreateVolume!({
      name: 'pvc-moving',
      capacity_range: { required_bytes: 64 * MiB },
      volume_capabilities: [cap],
    })) as {
      volume: { volume_id: string };
    };
    const id = created.volume.volume_id;
    const paths = (n: string) => ({
      staging: join(dir, `${n}-kubelet`, 'staging'),
      target: join(dir, `${n}-kubelet`, 'pods', 'p1', 'volume'),
    });
    for (const n of ['a', 'b']) mkdirSync(paths(n).staging, { recursive: true });

    // Node a stages and publishes; the pod writes.
    await a.node.NodeStageVolume!({ volume_id: id, staging_target_path: paths('a').staging, volume_capability: cap });
    await a.node.NodePublishVolume!({
      volume_id: id,
      staging_target_path: paths('a').staging,
      target_path: paths('a').target,
      volume_capability: cap,
    });
    writeFileSync(join(paths('a').target, 'data.txt'), 'written on a\n');
    execFileSync('sync', ['-f', join(paths('a').target, 'data.txt')]);

    // Node b may not take it while a has it staged (a holds the lease).
    const refused = await b.node.NodeStageVolume!({
      volume_id: id,
      staging_target_path: paths('b').staging,
      volume_capability: cap,
    }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(grpcCode(refused)).toBe(9); // FAILED_PRECONDITION
    expect(String(refused)).toMatch(/in use on node/);

    await a.node.NodeUnpublishVolume!({ volume_id: id, target_path: paths('a').target });
    expect(existsSync(paths('a').target)).toBe(false);
    await a.node.NodeUnstageVolume!({ volume_id: id, staging_target_path: paths('a').staging });
    expect(mountsUnder(join(dir, 'a-kubelet'))).toEqual([]);

    // Now b stages it: the dataset moves to b and the data is there; read-only publish refuses writes.
    await b.node.NodeStageVolume!({ volume_id: id, staging_target_path: paths('b').staging, volume_capability: cap });
    const state = (await new FlockerClient({ baseUrl: control.url }).listDatasetState()).find(
      (s) => s.dataset_id === id,
    );
    expect(state?.primary).toBe(nodeUuid('b'));
    await b.node.NodePublishVolume!({
      volume_id: id,
      staging_target_path: paths('b').staging,
      target_path: paths('b').target,
      volume_capability: cap,
      readonly: true,
    });
    expect(readFileSync(join(paths('b').target, 'data.txt'), 'utf8')).toBe('written on a\n');
    expect(() => writeFileSync(join(paths('b').target, 'other.txt'), 'x')).toThrow(/EROFS|read-only/);
    // Idempotent: the same publish again is fine; read-write on the same target is ALREADY_EXISTS.
    await b.node.NodePublishVolume!({
      volume_id: id,
      staging_target_path: paths('b').staging,
      target_path: paths('b').target,
      volume_capability: cap,
      readonly: true,
    });
    const rw = await b.node.NodePublishVolume!({
      volume_id: id,
      staging_target_path: paths('b').staging,
      target_path: paths('b').target,
      volume_capability: cap,
    }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(grpcCode(rw)).toBe(6); // ALREADY_EXISTS

    const stats = (await b.node.NodeGetVolumeStats!({ volume_id: id, volume_path: paths('b').target })) as {
      usage: { unit: string; total: string; used: string; available: string }[];
    };
    const bytes = stats.usage.find((u) => u.unit === 'BYTES');
    const inodes = stats.usage.find((u) => u.unit === 'INODES');
    expect(Number(bytes?.total)).toBeGreaterThan(32 * MiB);
    expect(Number(bytes?.used)).toBeGreaterThan(0);
    expect(Number(inodes?.total)).toBeGreaterThan(0);
    expect(Number(inodes?.used)).toBeGreaterThan(0);

    // Expansion while published: ControllerExpandVolume returns once b's agent has grown the device (no
    // NodeExpandVolume). The file system grows online where the agent may (CAP_SYS_RESOURCE), else at its
    // next mount: checked below after the volume moves back to a.
    expect(
      await a.controller.ControllerExpandVolume!({ volume_id: id, capacity_range: { required_bytes: 256 * MiB } }),
    ).toMatchObject({
      capacity_bytes: String(256 * MiB),
    });
    const onB = (await new FlockerClient({ baseUrl: control.url }).waitForCluster(undefined, 0)).nodes.find(
      (n) => n.uuid === nodeUuid('b'),
    );
    expect(onB?.manifestations.find((m) => m.dataset_id === id)?.size).toBe(256 * MiB);

    // DeleteVolume is refused while b has it staged, then works once unstaged.
    const inUse = await a.controller.DeleteVolume!({ volume_id: id }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(grpcCode(inUse)).toBe(9); // FAILED_PRECONDITION
    await b.node.NodeUnpublishVolume!({ volume_id: id, target_path: paths('b').target });
    await b.node.NodeUnstageVolume!({ volume_id: id, staging_target_path: paths('b').staging });
    await b.node.NodeUnstageVolume!({ volume_id: id, staging_target_path: paths('b').staging });

    // Back to a: the grown file system (grown at latest when a's agent mounts it) with the data.
    await a.node.NodeStageVolume!({ volume_id: id, staging_target_path: paths('a').staging, volume_capability: cap });
    await a.node.NodePublishVolume!({
      volume_id: id,
      staging_target_path: paths('a').staging,
      target_path: paths('a').target,
      volume_capability: cap,
    });
    const grown = (await a.node.NodeGetVolumeStats!({ volume_id: id, volume_path: paths('a').target })) as {
      usage: { unit: string; total: string }[];
    };
    expect(Number(grown.usage.find((u) => u.unit === 'BYTES')?.total)).toBeGreaterThan(192 * MiB);
    expect(readFileSync(join(paths('a').target, 'data.txt'), 'utf8')).toBe('written on a\n');
    await a.node.NodeUnpublishVolume!({ volume_id: id, target_path: paths('a').target });
    await a.node.NodeUnstageVolume!({ volume_id: id, staging_target_path: paths('a').staging });
    await a.controller.DeleteVolume!({ volume_id: id });
    await a.controller.DeleteVolume!({ volume_id: id });
    const listed = (await a.controller.ListVolumes!({})) as { entries?: { volume: { volume_id: string } }[] };
    expect((listed.entries ?? []).map((e) => e.volume.volume_id)).not.toContain(id);
  });

  it("topology and capacity: both nodes in the pool's zone, volumes placed there, GetCapacity from the pool's free bytes", async () => {
    if (!existsSync(socketOf('b'))) await startNode('b', 'node');
    const a = createCsiClient(socketOf('a'));
    const b = createCsiClient(socketOf('b'));
    clients.push(a, b);
    const poolId = (JSON.parse(readFileSync(join(dir, 'pool', 'pool.json'), 'utf8')) as { pool_id?: string }).pool_id;
    expect(poolId).toMatch(/^[0-9a-f-]{36}$/);
    const zone = { segments: { [TOPOLOGY_ZONE_KEY]: poolId } };
    // One shared loopback pool: one zone, the same on both nodes (the kubelet labels both nodes with it).
    for (const n of [a, b]) expect(await n.node.NodeGetInfo!({})).toMatchObject({ accessible_topology: zone });
    const nodes = await new FlockerClient({ baseUrl: control.url }).listNodes();
    expect(nodes).toHaveLength(2);
    for (const n of nodes) {
      expect(n).toMatchObject({ zone: poolId, available_bytes: expect.any(Number) });
      expect((n.available_bytes ?? -1) % (64 * MiB)).toBe(0);
    }

    const fs = statfsSync(join(dir, 'pool'));
    const capacity = (await a.controller.GetCapacity!({ accessible_topology: zone })) as {
      available_capacity: string;
      maximum_volume_size?: { value: string };
      minimum_volume_size?: { value: string };
    };
    // Free bytes of the pool's file system as the agents last reported them (other processes write there too).
    expect(Number(capacity.available_capacity)).toBeGreaterThan(0);
    expect(Number(capacity.available_capacity)).toBeLessThanOrEqual(fs.blocks * fs.bsize);
    expect(Number(capacity.available_capacity) % (64 * MiB)).toBe(0);
    expect(Number(capacity.maximum_volume_size?.value)).toBeGreaterThan(64 * MiB);
    expect(capacity.minimum_volume_size).toEqual({ value: String(64 * MiB) });
    const elsewhere = { segments: { [TOPOLOGY_ZONE_KEY]: 'another-pool' } };
    expect(await a.controller.GetCapacity!({ accessible_topology: elsewhere })).toMatchObject({
      available_capacity: '0',
    });

    const cap = { mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } };
    const created = (await a.controller.CreateVolume!({
      name: 'pvc-zoned',
      volume_capabilities: [cap],
      accessibility_requirements: { requisite: [zone], preferred: [zone] },
    })) as { volume: { volume_id: string; accessible_topology: unknown } };
    expect(created.volume.accessible_topology).toEqual([zone]);
    const refused = await a.controller.CreateVolume!({
      name: 'pvc-nowhere',
      volume_capabilities: [cap],
      accessibility_requirements: { requisite: [elsewhere] },
    }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(grpcCode(refused)).toBe(8); // RESOURCE_EXHAUSTED
    await a.controller.DeleteVolume!({ volume_id: created.volume.volume_id });
  });
});
