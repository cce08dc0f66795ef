/**
 * Local storage (issue 24) on one machine, as a new user tries it: `./dev cluster up 2 --backend local` (the same
 * arguments, parsed by the CLI's parseUpArgs, into startCluster). Each simulated host gets its own btrfs file system
 * on its own loop device, mounted only in its own mount namespace; a container on host a writes numbered lines and a
 * 16 MiB file to a Flocker volume through the Docker plugin, `docker run` with the volume on host b moves it (a copy
 * over mutual TLS on the bridge: a's agent sends it, b's pool then holds it and a's no live copy) and reads every
 * line and the file's checksum there; b, powered off and on, mounts its pool again and still has them. Then the cluster stops while a container on b still holds the volume: no
 * process, loop device, mount or image is left. Needs root.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import { startCluster, TINY_IMAGE, VOLUME_DRIVER, waitFor, type Cluster, type ClusterHost } from './cluster';
import { parseUpArgs } from './cluster/cli';
import { loopDevicesUnder, mountsUnder } from './loopPools';

jest.setTimeout(240_000);

const LINES = 500;
const volume = `local-demo-${randomUUID().slice(0, 8)}`;

let cluster: Cluster | undefined;
let a: ClusterHost;
let b: ClusterHost;

const started = (): Cluster => {
  if (cluster === undefined) throw new Error('the cluster did not start');
  return cluster;
};

/** `docker run --rm -v <volume>:/data --volume-driver=flocker tiny sh -c script` on host; its stdout. */
async function withVolume(host: ClusterHost, script: string): Promise<string> {
  const r = await host.docker(
    ['run', '--rm', '-v', `${volume}:/data`, `--volume-driver=${VOLUME_DRIVER}`, TINY_IMAGE, 'sh', '-c', script],
    { check: false, timeoutMs: 150_000 },
  );
  if (r.code !== 0) throw new Error(`docker run on host ${host.name} exited ${r.code}: ${r.stderr}\n${agentLogs()}`);
  return r.stdout;
}

function agentLogs(): string {
  return started()
    .hosts.map((h) => {
      const log = path.join(h.layout.logDir, 'agent.log');
      const text = fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '';
      return `--- agent ${h.name}\n${text.split('\n').slice(-15).join('\n')}`;
    })
    .join('\n');
}

/** Whether the dataset has a live copy (its subvolume) in host's pool, looked at inside the host. */
async function liveCopyOn(host: ClusterHost, datasetId: string): Promise<boolean> {
  const dir = path.join(host.layout.localPool, 'flocker', 'datasets', datasetId);
  return (await host.exec(['test', '-d', dir], { check: false })).code === 0;
}

async function datasetId(): Promise<string> {
  const d = (await started().client.listDatasets()).find((x) => x.metadata?.name === volume);
  if (d === undefined) throw new Error(`no dataset named ${volume}`);
  return d.dataset_id;
}

afterAll(async () => {
  if (cluster !== undefined && !cluster.isStopped) await cluster.stop();
});

describe('./dev cluster up 2 --backend local: a volume moves between two simulated Docker hosts', () => {
  it('gives each host its own btrfs file system on its own loop device, mounted only inside that host', async () => {
    cluster = await startCluster(parseUpArgs(['2', '--backend', 'local']));
    [a, b] = cluster.hosts as [ClusterHost, ClusterHost];
    expect(cluster.backend).toBe('local');
    const loops = loopDevicesUnder(cluster.baseDir);
    expect(loops.map((l) => l.backFile).sort()).toEqual([a.layout.localPoolImage, b.layout.localPoolImage]);
    const seen: string[] = [];
    for (const h of [a, b]) {
      const { stdout } = await h.exec(['findmnt', '-n', '-o', 'FSTYPE,SOURCE', h.layout.localPool]);
      const [fstype, source] = stdout.trim().split(/\s+/);
      expect(fstype).toBe('btrfs');
      expect(source).toBe(loops.find((l) => l.backFile === h.layout.localPoolImage)?.name);
      seen.push(source ?? '');
      expect(fs.readFileSync(h.layout.agentConfig, 'utf8')).toMatch(
        new RegExp(`backend: local\\n  engine: btrfs\\n  pool: "${h.layout.localPool}"\\n  transfer_port: 4525\\n`),
      );
    }
    expect(new Set(seen).size).toBe(2);
    // Not in this (the root) namespace: each pool is its host's alone.
    expect(mountsUnder(cluster.baseDir).filter((m) => m.mountPoint.endsWith('/pool'))).toEqual([]);
  });

  it('docker run on a writes the volume; docker run on b moves it by copying and reads every line', async () => {
    const sumA = await withVolume(
      a,
      `i=0; while [ $i -lt ${LINES} ]; do i=$((i+1)); echo "line $i" >> /data/log; done; ` +
        'dd if=/dev/urandom of=/data/blob bs=1M count=16 2>/dev/null; sync; sha256sum /data/blob',
    );
    const id = await datasetId();
    expect(await liveCopyOn(a, id)).toBe(true);
    expect(await liveCopyOn(b, id)).toBe(false);

    const out = (await withVolume(b, 'cat /data/log; sha256sum /data/blob')).trim().split('\n');
    const sumB = out.pop();
    expect(out).toEqual(Array.from({ length: LINES }, (_, i) => `line ${i + 1}`));
    expect(sumB?.split(' ')[0]).toBe(sumA.trim().split(' ')[0]);
    expect((sumB ?? '').split(' ')[0]).toMatch(/^[0-9a-f]{64}$/);

    // Copied, not re-attached: b's own pool holds it, a's agent sent it over the transfer port and retires its copy.
    expect(await liveCopyOn(b, id)).toBe(true);
    const state = (await started().client.listDatasetState()).find((d) => d.dataset_id === id);
    expect(state?.primary).toBe(b.requireNodeUuid());
    expect(fs.readFileSync(path.join(a.layout.logDir, 'agent.log'), 'utf8')).toMatch(/"moved a local dataset"/);
    await waitFor('a to retire its copy', async () => ((await liveCopyOn(a, id)) ? undefined : true), {
      timeoutMs: 30_000,
      intervalMs: 200,
      context: agentLogs,
    });
  });

  it('powered off and on, b mounts its pool again at boot and still has every line', async () => {
    await b.powerOff();
    expect((await b.exec(['true'], { check: false })).code).not.toBe(0); // no mount namespace to enter
    await b.powerOn();
    const lines = (await withVolume(b, 'cat /data/log')).trim().split('\n');
    expect(lines).toEqual(Array.from({ length: LINES }, (_, i) => `line ${i + 1}`));
    expect(await liveCopyOn(b, await datasetId())).toBe(true);
  });

  it('down leaves no process, loop device, mount or image behind, with a container still holding the volume', async () => {
    const c = started();
    await b.docker([
      'run',
      '-d',
      '-v',
      `${volume}:/data`,
      `--volume-driver=${VOLUME_DRIVER}`,
      TINY_IMAGE,
      'sh',
      '-c',
      'while :; do echo x >> /data/held; sleep 0.2; done',
    ]);
    const report = await c.stop();
    expect(report).toEqual({ survivors: [], loopDevicesLeft: [], errors: [] });
    expect(loopDevicesUnder(c.baseDir)).toEqual([]);
    expect(mountsUnder(c.baseDir)).toEqual([]);
    expect(fs.existsSync(a.layout.localPoolImage) || fs.existsSync(b.layout.localPoolImage)).toBe(false);
    // A temporary baseDir: gone with everything in it.
    expect(fs.existsSync(c.baseDir)).toBe(false);
  });
});
