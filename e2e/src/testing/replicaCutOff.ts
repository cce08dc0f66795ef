/**
 * The scenario the review-t4 replica tests share on an EtcdBed: three replicas (replica 0 reaching etcd
 * through blackholes, so it can be cut off alone), nodes a and b naming them, a dataset mounted on a with a
 * writer in it; and what a user sees while replica 0 is cut off or frozen.
 */
import { type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { FlockerClient } from '@flocker/api';
import { type Blackhole, type ControlReplica, type EtcdBed, MiB } from './etcdBed';

export interface CutOffBed {
  readonly holes: Blackhole[];
  readonly replicas: ControlReplica[];
  /** Replicas 1 and 2. */
  readonly healthy: FlockerClient;
  /** Replica 0 alone. */
  readonly cutOff: FlockerClient;
  readonly uuids: ReadonlyMap<string, string>;
  readonly datasetId: string;
  /** The dataset's mount on a. */
  readonly onA: string;
  readonly ack: string;
  readonly writer: ChildProcess;
}

/**
 * The replicas (node timeout `nodeTimeout`, etcd timeout and lease grace 2 s), agents a and b naming the
 * replicas' host:ports in the orders `orders` picks, both registered, and dataset "t4-part" mounted on a with
 * a writer in it.
 */
export async function startCutOffBed(
  bed: EtcdBed,
  nodeTimeout: number | string,
  orders: (hostPort: string[]) => Record<'a' | 'b', string[]>,
): Promise<CutOffBed> {
  const { holes, replicas } = await bed.startReplicasBehindHoles({
    prefix: `/t4-part-${process.pid}`,
    etcdTimeout: 2,
    nodeTimeout,
    leaseGrace: 2,
  });
  const urls = replicas.map((r) => r.url);
  const named = orders(replicas.map((r) => r.hostPort));
  const healthy = new FlockerClient({ baseUrl: urls[1]!, baseUrls: [urls[2]!], timeoutMs: 3_000 });
  const cutOff = new FlockerClient({ baseUrl: urls[0]!, timeoutMs: 3_000 });
  for (const name of ['a', 'b'] as const) bed.startAgent(name, named[name], { era: `era-t4p-${name}` });
  const uuids = new Map<string, string>();
  for (const name of ['a', 'b']) uuids.set(name, await bed.registered(name, healthy));
  const { datasetId, mount, ack, writer } = await bed.mountedWithWriter(healthy, 'a', uuids.get('a')!, 't4-part');
  return { holes, replicas, healthy, cutOff, uuids, datasetId, onA: mount, ack, writer };
}

/**
 * For `ms` after `cutAt`: when a's mount first went (ms after the cut; none if it stayed), and every 5 s what
 * the cut-off replica and the healthy ones list and what a write through the cut-off one answers.
 */
export async function watchWhileCut(
  bed: EtcdBed,
  t: CutOffBed,
  cutAt: number,
  ms: number,
): Promise<{ unmounted: number[]; shownByCutOff: string[] }> {
  const { cutOff, healthy, uuids, onA } = t;
  const unmounted: number[] = [];
  const shownByCutOff: string[] = [];
  while (Date.now() - cutAt < ms) {
    if (!bed.mountedAt(onA) && unmounted.length === 0) unmounted.push(Date.now() - cutAt);
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
  return { unmounted, shownByCutOff };
}

/** The agent's fence lines in `logFile` after its first `from` characters (the first four, each cut at 260). */
export function fenceLines(logFile: string, from: number): string[] {
  return readFileSync(logFile, 'utf8')
    .slice(from)
    .split('\n')
    .filter((l) => /fencing this node|node fenced/.test(l))
    .map((l) => l.slice(0, 260))
    .slice(0, 4);
}
