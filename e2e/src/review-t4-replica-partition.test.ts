/**
 * Review T4 (session 19): one control replica cut off from etcd (its etcd connections blackholed by a
 * TCP proxy: packets go nowhere, nothing is refused), while agents still reach it. The agents name
 * every replica (docs/production.md §4), and two healthy replicas remain. A node whose first replica
 * is the cut-off one must keep working through the others: no fence, no unmount, its writer keeps
 * writing. (What a user asking the cut-off replica sees is recorded in result.txt.)
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { FlockerClient } from '@flocker/api';
import { EtcdBed, etcdStoreArgs, MiB } from './testing/etcdBed';

jest.setTimeout(240_000);

const PARTITION_MS = Number(process.env.T4_PARTITION_MS ?? 25_000);

let bed: EtcdBed;

beforeAll(async () => {
  bed = await EtcdBed.start('flk-t4-part-');
});

afterAll(async () => {
  await bed?.close();
});

it('a replica cut off from etcd (agents still reach it): a node naming it first keeps working through the other two, no fence, no unmount', async () => {
  const { dir, etcd } = bed;
  const prefix = `/t4-part-${process.pid}`;
  const holes = await bed.blackholes();
  const store = (endpoints: string[]) =>
    etcdStoreArgs({
      endpoints,
      prefix,
      etcdTimeout: 2,
      nodeTimeout: process.env.T4_NODE_TIMEOUT ?? '10',
      leaseGrace: 2,
    });
  const replicas = [
    await bed.startReplica(store(holes.map((h) => h.endpoint))),
    await bed.startReplica(store(etcd.endpoints)),
    await bed.startReplica(store(etcd.endpoints)),
  ];
  const urls = replicas.map((r) => r.url);
  const hostPort = replicas.map((r) => r.hostPort);
  const orders: Record<string, string[]> = {
    a: [hostPort[0]!, hostPort[1]!, hostPort[2]!],
    b: [hostPort[1]!, hostPort[2]!, hostPort[0]!],
  };
  const healthy = new FlockerClient({ baseUrl: urls[1]!, baseUrls: [urls[2]!], timeoutMs: 3_000 });
  const cutOff = new FlockerClient({ baseUrl: urls[0]!, timeoutMs: 3_000 });

  for (const name of ['a', 'b']) bed.startAgent(name, orders[name]!, { era: `era-t4p-${name}` });
  const uuids = new Map<string, string>();
  for (const name of ['a', 'b']) uuids.set(name, await bed.registered(name, healthy));
  const ds = await healthy.createDataset({
    primary: uuids.get('a')!,
    maximum_size: 64 * MiB,
    metadata: { name: 't4-part' },
  });
  const onA = join(dir, 'a', 'mnt', ds.dataset_id);
  const mountedAt = (p: string) => bed.mountedAt(p);
  await bed.waitFor('the dataset mounted on a', () => mountedAt(onA), 60_000);
  const ack = join(dir, 'ack');
  const writer = bed.startWriter(onA, ack);
  await bed.waitFor('the writer to write', () => existsSync(ack));
  await new Promise((r) => setTimeout(r, 1_000));

  const agentLogBefore = readFileSync(join(dir, 'agent-a.log'), 'utf8').length;
  for (const h of holes) h.block();
  const cutAt = Date.now();
  const unmounted: number[] = [];
  const shownByCutOff: string[] = [];
  while (Date.now() - cutAt < PARTITION_MS) {
    if (!mountedAt(onA) && unmounted.length === 0) unmounted.push(Date.now() - cutAt);
    if ((Date.now() - cutAt) % 5_000 < 250) {
      const seen = await cutOff.listNodes().then(
        (ns) => ns.map((n) => `${n.uuid.slice(0, 8)}${n.uuid === uuids.get('a') ? '(a)' : '(b)'}`).join(','),
        (e: unknown) => String(e).slice(0, 160),
      );
      const write = await cutOff
        .createDataset({ primary: uuids.get('b')!, maximum_size: 64 * MiB, metadata: { name: `probe-${Date.now()}` } })
        .then(
          () => 'write accepted',
          (e: unknown) => String(e).slice(0, 200),
        );
      const byHealthy = await healthy.listNodes().then(
        (ns) => ns.map((n) => (n.uuid === uuids.get('a') ? 'a' : 'b')).join(','),
        (e: unknown) => String(e).slice(0, 100),
      );
      shownByCutOff.push(
        `${Date.now() - cutAt} ms: cut-off replica lists nodes [${seen}]; healthy replicas list [${byHealthy}]; a write through the cut-off one: ${write}`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const ackedDuring = Number(readFileSync(ack, 'utf8'));
  for (const h of holes) h.heal();
  await new Promise((r) => setTimeout(r, 5_000));
  const agentLog = readFileSync(join(dir, 'agent-a.log'), 'utf8').slice(agentLogBefore);
  const fenced = agentLog
    .split('\n')
    .filter((l) => /fencing this node|node fenced/.test(l))
    .map((l) => l.slice(0, 260))
    .slice(0, 4);
  writeFileSync(
    join(dir, 'result.txt'),
    JSON.stringify({ unmounted, fenced, writerExit: writer.exitCode, ackedDuring, shownByCutOff }, null, 1),
  );
  expect({ unmounted, fenced, writerAlive: writer.exitCode === null }).toEqual({
    unmounted: [],
    fenced: [],
    writerAlive: true,
  });
  execFileSync('sync');
});
