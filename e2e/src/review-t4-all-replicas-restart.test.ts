/**
 * Review T4 (session 19): every control replica killed -9 at once and started again 3 s later on the
 * same ports (a power cut of the control hosts, `systemctl restart` on all of them), under one real
 * agent with a mounted, leased dataset. The outage is shorter than the self-fence bound F = T/2, so
 * nothing may change for the node: no fence, no unmount, the lease kept, no node declared dead.
 *
 * T is 30 s (F = 15 s): the outage the agent sees is the 3 s plus the replicas' start (node boot and etcd),
 * which took 4-5 s under load (load average 15-20 on 2 cores) — with T = 10 s (F = 5 s) the agent then fenced
 * rightly, the outage being longer than F, and the test failed on a premise that did not hold.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FlockerClient } from '@flocker/api';
import { etcdStoreArgs, useEtcdBed, MiB } from './testing/etcdBed';

jest.setTimeout(180_000);

const NODE_TIMEOUT_S = 30;
const LEASE_GRACE_S = 2;

const theBed = useEtcdBed('flocker-t4-allrestart-');

it('all replicas killed -9 at once and back 3 s later: the node keeps its mount and lease, is never declared dead, does not fence', async () => {
  const bed = theBed();
  const storeArgs = etcdStoreArgs({
    endpoints: bed.etcd.endpoints,
    prefix: `/t4-${process.pid}-${Date.now()}`,
    etcdTimeout: 2,
    nodeTimeout: NODE_TIMEOUT_S,
    leaseGrace: LEASE_GRACE_S,
  });
  const replicas = await Promise.all([1, 2, 3].map((i) => bed.startReplica(storeArgs, `control-${i}.log`)));
  bed.startAgent(
    'a',
    replicas.map((r) => r.hostPort),
    { era: 'era-t4-allrestart', agent: { default_dataset_size: 64 * MiB, log_level: 'debug' } },
  );

  const clients = replicas.map((r) => new FlockerClient({ baseUrl: r.url, timeoutMs: 5_000 }));
  const [c1, c2, c3] = clients as [FlockerClient, FlockerClient, FlockerClient];
  const node = await bed.registered('a', c3, 'the agent to report');
  const ds = await c1.createDataset({ primary: node, maximum_size: 64 * MiB, metadata: { name: 't4-in-use' } });
  await bed.waitFor('mounted', async () =>
    (await c2.listDatasetState()).some(
      (s) => s.dataset_id === ds.dataset_id && s.path !== undefined && s.path !== null,
    ),
  );
  await c2.acquireLease({ dataset_id: ds.dataset_id, node_uuid: node, expires: null, holder: 'docker' });
  await bed.waitFor('the lease on every replica', async () => {
    const all = await Promise.all(clients.map((c) => c.listLeases()));
    return all.every((ls) => ls.some((l) => l.dataset_id === ds.dataset_id)) ? true : undefined;
  });

  const logBefore = readFileSync(bed.agentLogFile('a'), 'utf8').length;
  const mountPath = bed.mountPath('a', ds.dataset_id);
  const mounted = () => readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${mountPath} `);
  expect(mounted()).toBe(true);
  const killedAt = Date.now();
  await Promise.all(replicas.map((r) => r.kill('SIGKILL')));
  await new Promise((r) => setTimeout(r, 3_000));
  await Promise.all(replicas.map((r) => r.start()));
  const restartedAt = Date.now();
  const problems: string[] = [];
  while (Date.now() - restartedAt < 20_000) {
    if (!mounted()) problems.push(`${Date.now() - restartedAt} ms: unmounted`);
    const held = await Promise.all(
      clients.map((c) =>
        c.listLeases().then(
          (ls) => ls.some((l) => l.dataset_id === ds.dataset_id),
          () => true,
        ),
      ),
    );
    if (!held.every(Boolean)) problems.push(`${Date.now() - restartedAt} ms: lease held on ${JSON.stringify(held)}`);
    const alive = await Promise.all(
      clients.map((c) =>
        c.listNodes().then(
          (ns) => ns.some((n) => n.uuid === node),
          () => true,
        ),
      ),
    );
    if (!alive.every(Boolean)) problems.push(`${Date.now() - restartedAt} ms: node listed on ${JSON.stringify(alive)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  const agentLines = readFileSync(bed.agentLogFile('a'), 'utf8').slice(logBefore).split('\n');
  const fenced = agentLines.filter((l) => /fencing this node|node fenced/.test(l)).map((l) => l.slice(0, 240));
  const events = (await c1.listEvents()).map((e) => e.message).filter((m) => /dead|released/i.test(m));
  writeFileSync(
    join(bed.dir, 'result.txt'),
    JSON.stringify({ outageMs: restartedAt - killedAt, problems, fenced, events }, null, 1),
  );
  expect({ problems: problems.slice(0, 5), fenced, events }).toEqual({ problems: [], fenced: [], events: [] });
});
