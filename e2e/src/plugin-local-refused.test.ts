/**
 * Review U2 (session 16), findings 4 and 5, end to end on local storage (btrfs, 3 hosts, TLS): a volume made with
 * `docker volume create -o replicas=1` gets its standby replica; once its host is dead, `docker run` of it on
 * another host fails within seconds (the agent's SOURCE_UNREACHABLE refusal is final until the user acts) and names
 * the replica's host with the command that fails over to it. Needs root.
 */
import { randomUUID } from 'node:crypto';
import { startCluster, TINY_IMAGE, VOLUME_DRIVER, type Cluster, type ClusterHost } from './cluster';
import { parseUpArgs } from './cluster/cli';

jest.setTimeout(300_000);

const volume = `p-refused-${randomUUID().slice(0, 8)}`;
let cluster: Cluster | undefined;

afterAll(async () => {
  if (cluster !== undefined && !cluster.isStopped) await cluster.stop();
});

it('docker run of a volume on a dead host fails soon and names the standby replica made by -o replicas=1', async () => {
  cluster = await startCluster(parseUpArgs(['3', '--backend', 'local']));
  const c = cluster;
  const [a, b] = c.hosts as [ClusterHost, ClusterHost, ClusterHost];
  const made = await a.docker(['volume', 'create', '-d', VOLUME_DRIVER, '-o', 'replicas=1', volume], {
    check: false,
    timeoutMs: 60_000,
  });
  expect(made.stderr).toBe('');
  const vol = ['-v', `${volume}:/data`, `--volume-driver=${VOLUME_DRIVER}`];
  const w = await a.docker(['run', '--rm', ...vol, TINY_IMAGE, 'sh', '-c', 'echo x > /data/f; sync'], {
    check: false,
    timeoutMs: 150_000,
  });
  expect(w.code).toBe(0);
  const d = (await c.client.listDatasets()).find((x) => x.metadata.name === volume);
  expect(d?.metadata['clusterhq:flocker:replicas']).toBe('1');
  // The replica's first snapshot sent (a's report names its node and age).
  let replicaHost: string | undefined;
  for (let i = 0; i < 120 && replicaHost === undefined; i++) {
    const s = await c.client.waitForCluster(undefined, 0);
    const r = s.nodes
      .find((n) => n.uuid === d?.primary)
      ?.replicas?.find((x) => x.dataset_id === d?.dataset_id && x.taken_at !== null);
    replicaHost = r === undefined ? undefined : s.nodes.find((n) => n.uuid === r.node_uuid)?.host;
    if (replicaHost === undefined) await new Promise((res) => setTimeout(res, 500));
  }
  expect(replicaHost).toBeDefined();
  const uuidA = a.requireNodeUuid();
  await a.powerOff();
  // Declared dead (node timeout 10 s), as the control service says: not a fixed 16 s.
  for (let i = 0; ; i++) {
    const s = await c.client.waitForCluster(undefined, 0);
    if (s.nodes.find((n) => n.uuid === uuidA)?.alive === false) break;
    if (i >= 240) throw new Error(`host a not declared dead 60 s after its power-off: ${JSON.stringify(s.nodes)}`);
    await new Promise((res) => setTimeout(res, 250));
  }
  const t0 = Date.now();
  const r = await b.docker(['run', '--rm', ...vol, TINY_IMAGE, 'cat', '/data/f'], { check: false, timeoutMs: 150_000 });
  const seconds = (Date.now() - t0) / 1000;
  expect(r.code).not.toBe(0);
  expect(seconds).toBeLessThan(30);
  expect(r.stderr).toContain(`its data is on host ${a.address}, which is dead`);
  expect(r.stderr).toContain(`flocker volumes move ${volume} ${replicaHost} --accept-replica-loss`);
  // Its move taken back (TLS: a node's certificate may put a dataset back where its data is), no lease left.
  expect(r.stderr).toMatch(/this Mount's move was taken back/);
  expect((await c.client.listDatasets()).find((x) => x.dataset_id === d?.dataset_id)?.primary).toBe(d?.primary);
  expect((await c.client.listLeases()).filter((l) => l.dataset_id === d?.dataset_id)).toEqual([]);
});
