/**
 * Forgetting a node on the etcd store (forgetNode.ts): the commit that takes a node out of the configuration's nodes
 * deletes its stored report and container report in the same transaction, guarded by the report's revision; every
 * replica's watch is told. Against a real 3-member etcd cluster on loopback (testing/etcdCluster).
 */
import { randomUUID } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import type { ContainerReport, NodeReport } from '@flocker/api';
import { type Configuration, emptyConfiguration } from '../configuration';
import type { StoreListener } from '../ConfigurationStore';
import { deleteEntry } from '../PersistentMap';
import { EtcdTestCluster } from '../testing/etcdCluster';
import { EtcdConfigurationStore, forgottenNodes, StoreConflict } from './EtcdConfigurationStore';

jest.setTimeout(60_000);
const X = 'cccccccc-cccc-4ccc-8ccc-cccccccccccc';
const Y = 'dddddddd-dddd-4ddd-8ddd-dddddddddddd';

function report(uuid: string, era = 'era-1'): NodeReport {
  return {
    uuid,
    era,
    host: `host-${uuid.slice(0, 2)}`,
    instance_id: `i-${uuid.slice(0, 4)}`,
    backend: 'loopback',
    manifestations: [],
    errors: [],
  };
}
const noContainers: ContainerReport = { containers: [] };

function withNodes(config: Configuration, ...uuids: string[]): Configuration {
  return {
    ...config,
    version: config.version + 1,
    nodes: new Map([
      ...config.nodes,
      ...uuids.map((u): [string, { uuid: string; host: string }] => [u, { uuid: u, host: `host-${u.slice(0, 2)}` }]),
    ]),
  };
}
function without(config: Configuration, uuid: string): Configuration {
  return { ...config, version: config.version + 1, nodes: deleteEntry(config.nodes, uuid) };
}

async function eventually(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Heard {
  reports: NodeReport[];
  gone: string[];
  versions: number[];
  configs: Configuration[];
}
function listener(): StoreListener & { heard: Heard } {
  const heard: Heard = { reports: [], gone: [], versions: [], configs: [] };
  return {
    heard,
    configuration: (c) => {
      heard.versions.push(c.version);
      heard.configs.push(c);
    },
    report: (r) => heard.reports.push(r),
    nodeGone: (uuid) => heard.gone.push(uuid),
  };
}

let etcd: EtcdTestCluster;
let raw: Etcd3;
const stores: EtcdConfigurationStore[] = [];
const open = (prefix: string): EtcdConfigurationStore => {
  const s = new EtcdConfigurationStore({ endpoints: etcd.endpoints, prefix });
  stores.push(s);
  return s;
};
beforeAll(async () => {
  etcd = await EtcdTestCluster.start();
  raw = new Etcd3({ hosts: etcd.endpoints });
});
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});
afterAll(async () => {
  raw?.close();
  await etcd?.stop();
});

describe('forgottenNodes', () => {
  it('names the nodes a configuration takes out, none when its nodes are the same map', () => {
    const one = withNodes(emptyConfiguration, X, Y);
    expect(forgottenNodes(one, { ...one, version: 2 })).toEqual([]);
    expect(forgottenNodes(one, without(one, X))).toEqual([X]);
    expect(forgottenNodes(one, withNodes(without(one, Y), randomUUID()))).toEqual([Y]);
  });
});

describe('forgetting a node on etcd', () => {
  it('deletes its report and container report with the commit; the other replica is told; a restart reads neither', async () => {
    const prefix = `/t-${randomUUID()}`;
    const a = open(prefix);
    const b = open(prefix);
    let config = await a.load();
    await b.load();
    const la = listener();
    const lb = listener();
    await a.subscribe(la);
    await b.subscribe(lb);
    const v1 = withNodes(config, X, Y);
    await a.commit(v1, config);
    config = v1;
    await a.publishReport(report(X), JSON.stringify(report(X)), 1000, 30_000);
    await a.publishReport(report(Y), JSON.stringify(report(Y)), 1000, 30_000);
    a.publishContainers(X, noContainers, 1000);
    await eventually(() => lb.heard.reports.length === 2);
    // publishContainers does not wait for its put.
    let containerKeys: string[] = [];
    await eventually(() => {
      void raw
        .getAll()
        .prefix(`${prefix}/containers/`)
        .keys()
        .then((k) => (containerKeys = k));
      return containerKeys.length === 1;
    });

    const v2 = without(config, X);
    await a.commit(v2, config);
    expect(await raw.getAll().prefix(`${prefix}/nodes/`).keys()).toEqual([`${prefix}/nodes/${Y}`]);
    expect(await raw.getAll().prefix(`${prefix}/containers/`).keys()).toEqual([]);
    await eventually(() => lb.heard.gone.includes(X) && la.heard.gone.includes(X));
    expect(lb.heard.gone).toEqual([X]);
    await eventually(() => lb.heard.versions.at(-1) === v2.version);

    // A restarted replica: the configuration without X, and no report of it (no ghost).
    const c = open(prefix);
    expect([...(await c.load()).nodes.keys()]).toEqual([Y]);
    const lc = listener();
    await c.subscribe(lc);
    expect(lc.heard.reports.map((r) => r.uuid)).toEqual([Y]);

    // Reporting again, X is stored again (not taken for the identical report put before the forget).
    await a.publishReport(report(X), JSON.stringify(report(X)), 1001, 30_000);
    expect((await raw.get(`${prefix}/nodes/${X}`).string()) ?? '').toContain(X);
  });

  it('a report stored since this replica saw it fails the commit and is kept; judged on it, the forget goes through', async () => {
    const prefix = `/t-${randomUUID()}`;
    // a watches nothing: what it saw of X is its own put, deterministically older than b's.
    const a = open(prefix);
    const b = open(prefix);
    const config = await a.load();
    await b.load();
    const v1 = withNodes(config, X);
    await a.commit(v1, config);
    await a.publishReport(report(X, 'era-old'), JSON.stringify(report(X, 'era-old')), 1000, 30_000);
    // X reports again through b.
    await b.publishReport(report(X, 'era-new'), JSON.stringify(report(X, 'era-new')), 2000, 30_000);
    const err: unknown = await a.commit(without(v1, X), v1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreConflict);
    expect((err as StoreConflict).current.version).toBe(v1.version);
    // Nothing changed in etcd: neither the configuration nor the report.
    expect(await raw.get(`${prefix}/head`).json()).toMatchObject({ version: v1.version });
    expect(await raw.get(`${prefix}/nodes/${X}`).string()).toContain('era-new');
    // The failed transaction read what etcd holds: judged again on it (ControlState re-applies), it goes through.
    await a.commit(without(v1, X), v1);
    expect(await raw.getAll().prefix(`${prefix}/nodes/`).keys()).toEqual([]);
  });

  it('a replica the node reports to while another forgets it: either the forget fails or that replica keeps it', async () => {
    const prefix = `/t-${randomUUID()}`;
    const a = open(prefix);
    const b = open(prefix);
    const config = await a.load();
    await b.load();
    const la = listener();
    const lb = listener();
    await a.subscribe(la);
    await b.subscribe(lb);
    const v1 = withNodes(config, X, Y);
    await a.commit(v1, config);
    await a.publishReport(report(X, 'era-old'), JSON.stringify(report(X, 'era-old')), 1000, 30_000);
    await eventually(() => lb.heard.reports.length === 1 && lb.heard.versions.includes(v1.version));
    // b's own copy of v1 (a store compares from what it read).
    const seenByB = lb.heard.configs.at(-1) as Configuration;
    const v2 = without(seenByB, X);
    // X reports to a while b forgets it: a's put is in flight before either reaches etcd.
    const [forget, put] = await Promise.allSettled([
      b.commit(v2, seenByB),
      a.publishReport(report(X, 'era-new'), JSON.stringify(report(X, 'era-new')), 2000, 30_000),
    ]);
    expect(put.status).toBe('fulfilled');
    // Put first: b's guard fails. Put after the delete: it stands, and a's watch, seeing the delete older than its
    // put (in flight, or answered with a later revision), does not tell a the node is gone.
    if (forget.status === 'rejected') expect(forget.reason).toBeInstanceOf(StoreConflict);
    expect(await raw.get(`${prefix}/nodes/${X}`).string()).toContain('era-new');
    // a's watch has seen whatever delete there was by the time it sees a later commit.
    const base = forget.status === 'fulfilled' ? v2 : seenByB;
    const v3 = withNodes(base, randomUUID());
    await b.commit(v3, base);
    await eventually(() => la.heard.versions.includes(v3.version));
    expect(la.heard.gone).toEqual([]);
    process.stdout.write(`forget raced with a report: ${forget.status}\n`);
  });

  it('a node that never stored a report is forgotten too (its key absent: revision 0)', async () => {
    const prefix = `/t-${randomUUID()}`;
    const a = open(prefix);
    const config = await a.load();
    await a.subscribe(listener());
    const v1 = withNodes(config, X);
    await a.commit(v1, config);
    await a.commit(without(v1, X), v1);
    expect([...(await open(prefix).load()).nodes.keys()]).toEqual([]);
  });
});
