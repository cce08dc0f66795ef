/**
 * Review T1 (session 18): a dataset agent restarted (kill -9, upgrade, crash) while its cloud API hangs does not
 * report to the control service until the cloud answers, so its live node is declared dead after the node
 * timeout, and its leases are released ("lease_released_dead_node"), while its mounts and the containers on them
 * are still there. The node does not fence itself either (it is in contact with the control service). Another
 * host may then take its volumes over (a force detach once the cloud answers; on NFS-backed Cinder nothing
 * stops the old node writing). Seen on real Cinder (its API stopped with SIGSTOP, node timeout 10 s: the node
 * gone from the node list after ~10 s, lease released, mount still present); here on EBS, moto's EC2 API behind
 * a proxy that stops answering. A running agent is not affected: it keeps reporting while the cloud hangs.
 * Expected: a node whose agent reaches the control service is not declared dead because the cloud is slow.
 * Fixed in session 19 (S0C, S0A): from its start until its first full look the agent sends a liveness-only report
 * (backend_unseen) every heartbeat; the control service keeps the node alive with its last full report as its state
 * and a BACKEND_UNREACHABLE error, its leases kept; once the cloud answers, its full report replaces it.
 */
import { writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import { startMoto, type MotoServer } from '@flocker/storage-drivers/testing';
import { LocalAgentBed } from './localAgents';

jest.setTimeout(180_000);

const NODE_TIMEOUT_S = 6;

let moto: MotoServer;
let bed: LocalAgentBed;
let proxy: net.Server;
let hanging = false;
const sockets = new Set<net.Socket>();

/** Connections taken while hanging, their requests unread: passed on to moto when the hang ends. */
const held: net.Socket[] = [];
let target: URL;

function forward(client: net.Socket): void {
  const upstream = net.connect(Number(target.port), target.hostname);
  sockets.add(upstream);
  upstream.on('close', () => sockets.delete(upstream));
  upstream.on('error', () => client.destroy());
  client.pipe(upstream).pipe(client);
}

/**
 * A TCP proxy to moto that, while `hanging`, takes connections and does not answer (a cloud API that hangs); when the
 * hang ends the requests held are answered (a brown-out that ends; since b23f038 a request held longer than the
 * driver's request timeout is also aborted and sent again).
 */
async function startProxy(to: URL): Promise<number> {
  target = to;
  proxy = net.createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => undefined);
    if (hanging) held.push(client);
    else forward(client);
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  const address = proxy.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  return address.port;
}

/** One EC2 query-API call to moto itself (not through the proxy; moto checks no signature, only reads the region). */
async function ec2(params: Record<string, string>): Promise<string> {
  const res = await fetch(moto.endpoint, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/x-www-form-urlencoded',
      Authorization:
        'AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0',
    },
    body: new URLSearchParams({ Version: '2016-11-15', ...params }).toString(),
  });
  return res.text();
}

/** An instance in moto for the agent to be (the agent checks its instance_id with EC2 at start since session 18 S4). */
async function instanceIn(zone: string): Promise<string> {
  const image = /<imageId>([^<]+)<\/imageId>/.exec(await ec2({ Action: 'DescribeImages' }))?.[1];
  if (image === undefined) throw new Error('moto offers no AMI');
  const run = await ec2({
    Action: 'RunInstances',
    ImageId: image,
    MinCount: '1',
    MaxCount: '1',
    InstanceType: 't3.micro',
    'Placement.AvailabilityZone': zone,
  });
  const id = /<instanceId>([^<]+)<\/instanceId>/.exec(run)?.[1];
  if (id === undefined) throw new Error(`RunInstances: ${run.slice(0, 500)}`);
  return id;
}

function hang(): void {
  hanging = true;
  for (const s of sockets) s.destroy(); // kept-alive connections too: every request from now on hangs
}

function answerAgain(): void {
  hanging = false;
  for (const client of held.splice(0)) if (!client.destroyed) forward(client);
}

beforeAll(async () => {
  moto = await startMoto();
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => proxy?.close(r));
  await moto?.stop();
});

beforeEach(async () => {
  bed = await LocalAgentBed.start('flocker-t1-cloud-hang-', { nodeTimeoutSeconds: NODE_TIMEOUT_S });
});

afterEach(async () => {
  await bed?.close();
});

it('an agent restarted while the cloud API hangs keeps its live node from being declared dead', async () => {
  const port = await startProxy(new URL(moto.endpoint));
  const node = join(bed.dir, 'a');
  const config = {
    backend: 'aws',
    region: 'us-east-1',
    zone: 'us-east-1a',
    cluster_id: '2b8e6f0a-7c4d-4f1e-9a3b-5d6c7e8f9a0b',
    access_key_id: 'testing',
    secret_access_key: 'testing',
    endpoint: `http://127.0.0.1:${port}`,
    instance_id: await instanceIn('us-east-1a'),
  };
  writeFileSync(
    bed.configPath('a'),
    [
      'version: 1',
      `control-service: {hostname: 127.0.0.1, port: ${bed.control.port}}`,
      `dataset: ${JSON.stringify(config)}`,
      `node: {state_dir: ${join(node, 'state')}, mount_root: ${join(node, 'mnt')}, era_file: ${join(node, 'era')}}`,
      'agent: {resync_interval_seconds: 2, backoff_initial_seconds: 0.2, backoff_max_seconds: 2}',
      'metrics: {dataset_agent_port: 0}',
      '',
    ].join('\n'),
  );
  const first = bed.startAgent('a', { AWS_EC2_METADATA_DISABLED: 'true' });
  await bed.waitFor('node a known', async () => (await bed.client.listNodes()).length === 1);
  const uuid = bed.nodeUuid('a');
  // A volume of this node's (its EBS volume is made in moto; moto shows no device, so it is never mounted here), and a
  // lease on it: a node declared dead has its leases released (lease_released_dead_node) and its volumes taken.
  const volume = await bed.client.createDataset({ primary: uuid, maximum_size: 1024 ** 3 });
  await bed.client.acquireLease({ dataset_id: volume.dataset_id, node_uuid: uuid, expires: null });
  const nodeState = async () => (await bed.client.waitForCluster(undefined, 0)).nodes.find((n) => n.uuid === uuid);
  const hasVolume = (n: Awaited<ReturnType<typeof nodeState>>) =>
    (n?.volumes ?? []).some((v) => v.dataset_id === volume.dataset_id);
  const blockdeviceId = await bed.waitFor(
    'its volume in its report',
    async () => (await nodeState())?.volumes?.find((v) => v.dataset_id === volume.dataset_id)?.blockdevice_id,
  );

  // moto attaches it here, but no device shows up on this host, and a look waits up to 2 minutes for the device of a
  // volume attached here: detached behind the agents' back (once the first one attached it), so that the look after
  // the hang ends in a moment.
  const describe = () => ec2({ Action: 'DescribeVolumes', 'VolumeId.1': blockdeviceId });
  await bed.waitFor('its volume attached', async () => (await describe()).includes('<status>in-use</status>'));
  first.proc.kill('SIGKILL');
  await first.exited;
  await ec2({ Action: 'DetachVolume', VolumeId: blockdeviceId, InstanceId: config.instance_id, Force: 'true' });
  await bed.waitFor('its volume detached', async () => (await describe()).includes('<status>available</status>'));
  hang();
  bed.startAgent('a', { AWS_EC2_METADATA_DISABLED: 'true' }); // stopped by bed.close

  // Three node timeouts with the agent running and the control service reachable.
  await new Promise((r) => setTimeout(r, 3 * NODE_TIMEOUT_S * 1000));
  const alive = (await bed.client.listNodes()).some((n) => n.uuid === uuid);
  const deaths = (await bed.client.listEvents()).filter((e) => JSON.stringify(e).includes('node_dead'));
  const hung = await nodeState();
  const leases = await bed.client.listLeases();
  answerAgain();
  expect(deaths).toEqual([]);
  expect(alive).toBe(true);
  // While hung: alive with the state of its last full report kept, the condition shown, its lease kept.
  expect(hung?.alive).toBe(true);
  expect(hung?.errors.map((e) => e.code)).toContain('BACKEND_UNREACHABLE');
  expect(hasVolume(hung)).toBe(true);
  expect(leases.map((l) => [l.dataset_id, l.node_uuid])).toEqual([[volume.dataset_id, uuid]]);

  // The cloud answers again: the agent's first full look, its report with its volume and without the condition.
  await bed.waitFor('its full report after the hang', async () => {
    const n = await nodeState();
    return hasVolume(n) && !(n?.errors ?? []).some((e) => e.code === 'BACKEND_UNREACHABLE');
  });
});
