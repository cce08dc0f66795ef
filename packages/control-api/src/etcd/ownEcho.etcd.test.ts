/**
 * The replica that wrote a configuration change does not parse its own log record again when its etcd watch brings it
 * back (issue 23: each commit's echo cost the writer a JSON parse and a schema check of the whole record, twice when it
 * came while the commit was in flight); the other replica parses and applies it as before. Real 3-member etcd.
 */
import { randomUUID } from 'node:crypto';
import type { Configuration } from '../configuration';
import type { StoreListener } from '../ConfigurationStore';
import { EtcdTestCluster } from '../testing/etcdCluster';
import { EtcdConfigurationStore, logKeyVersion } from './EtcdConfigurationStore';

jest.setTimeout(60_000);

let etcd: EtcdTestCluster;
beforeAll(async () => {
  etcd = await EtcdTestCluster.start();
});
afterAll(async () => {
  await etcd?.stop();
});

/** The next version of `config`, with one more node on `host`. */
function withNode(config: Configuration, host: string): Configuration {
  const uuid = randomUUID();
  return { ...config, version: config.version + 1, nodes: new Map([...config.nodes, [uuid, { uuid, host }]]) };
}

function collecting(seen: Configuration[]): StoreListener {
  return { configuration: (config) => void seen.push(config), report: () => undefined };
}

async function eventually(check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

it('logKeyVersion reads the version of a log key, with or without the namespace, and of nothing else', () => {
  expect(logKeyVersion('log/0000000000000012')).toBe(12);
  expect(logKeyVersion('/flocker/log/0000000000000012')).toBe(12);
  expect(logKeyVersion('/flocker/catalog/0000000000000012')).toBeUndefined();
  expect(logKeyVersion('/flocker/log/12')).toBeUndefined();
  expect(logKeyVersion('/flocker/nodes/0000000000000012')).toBeUndefined();
});

it("the writer skips its own records from its watch unparsed; the other replica applies them, and the writer the other's", async () => {
  const prefix = `/t-${randomUUID()}`;
  const errors: unknown[] = [];
  const onError = (err: unknown): void => void errors.push(err);
  const a = new EtcdConfigurationStore({ endpoints: etcd.endpoints, prefix, onError });
  const b = new EtcdConfigurationStore({ endpoints: etcd.endpoints, prefix, onError });
  const seenA: Configuration[] = [];
  const seenB: Configuration[] = [];
  const parse = JSON.parse;
  const parsed: string[] = [];
  const spy = jest
    .spyOn(JSON, 'parse')
    .mockImplementation((text: string, reviver?: Parameters<typeof JSON.parse>[1]): unknown => {
      parsed.push(text);
      return parse(text, reviver) as unknown;
    });
  try {
    let config = await a.load();
    await b.load();
    await a.subscribe(collecting(seenA));
    await b.subscribe(collecting(seenB));
    // Back to back: an echo often comes while the next commit is in flight (held, then looked at again).
    for (let i = 0; i < 5; i++) {
      config = withNode(config, `own-echo-${i}.test`);
      await a.commit(config);
    }
    await eventually(() => seenB.at(-1)?.version === 5);
    // The other way round: once A has B's change, its watch has brought back all of A's own records before it.
    await b.commit(withNode(seenB.at(-1) as Configuration, 'from-b.test'));
    await eventually(() => seenA.at(-1)?.version === 6);
    expect(seenB.map((c) => c.version)).toEqual([1, 2, 3, 4, 5]);
    expect(seenA.map((c) => c.version)).toEqual([6]);
    expect([...(seenA[0]?.nodes.values() ?? [])].map((n) => n.host).sort()).toEqual([
      'from-b.test',
      'own-echo-0.test',
      'own-echo-1.test',
      'own-echo-2.test',
      'own-echo-3.test',
      'own-echo-4.test',
    ]);
    // Each of A's records was parsed once, by B; B's record once, by A.
    expect(parsed.filter((t) => t.includes('own-echo-')).length).toBe(5);
    expect(parsed.filter((t) => t.includes('from-b.test')).length).toBe(1);
    expect(errors).toEqual([]);
  } finally {
    spy.mockRestore();
    await a.close();
    await b.close();
  }
});
