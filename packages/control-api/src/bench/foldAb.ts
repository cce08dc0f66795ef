/**
 * Commits while the etcd store folds its log (issue 23), two builds of EtcdConfigurationStore side by side in one
 * process: A = the module given by --old (e.g. a transpiled copy of an older EtcdConfigurationStore.ts placed next to
 * dist/etcd/EtcdConfigurationStore.js), B = this build's (or --new's). One 3-member etcd; each variant its own prefix holding the
 * same configuration (--datasets). Rounds alternate A, B, A, B…: each starts a fold (store.snapshot()) and times
 * commits of one create each, back to back for --round-ms, each followed by the bench's etcd floor (the same bare
 * transaction on a third prefix, as the scale bench times after each create); then the fold ends untimed.
 * Prints per variant the pooled p50 / p99 / max, the medians of the rounds' p99s and counts over 10 ms, and in how many
 * pairs B's round p99 was lower.
 *   node packages/control-api/dist/bench/foldAb.js --old dist/etcd/EtcdConfigurationStore.head.js [--pairs 20]
 *   node packages/control-api/dist/bench/foldAb.js --b-options '{"snapshotChunkBytes":1048576,"foldMaxDeferMs":2000}'
 */
import { randomUUID } from 'node:crypto';
import * as path from 'node:path';
import { Etcd3 } from 'etcd3';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { type Configuration, createDataset, emptyConfiguration, registerNode } from '../configuration';
import { EtcdConfigurationStore, type EtcdStoreOptions } from '../etcd/EtcdConfigurationStore';
import { EtcdTestCluster } from '../testing/etcdCluster';
import { stats } from './harness';

type StoreClass = new (o: EtcdStoreOptions) => EtcdConfigurationStore;
const TARGET_MS = 10;

const median = (xs: number[]): number => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s.length === 0 ? NaN : (s[Math.floor(s.length / 2)] as number);
};

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .option('old', {
      type: 'string',
      describe: 'Module exporting the A build of EtcdConfigurationStore (default: this build)',
    })
    .option('new', { type: 'string', describe: 'Module exporting the B build (default: this build)' })
    .option('a-options', { type: 'string', default: '{}', describe: "A's store options (JSON), e.g. a fold setting" })
    .option('b-options', { type: 'string', default: '{}', describe: "B's store options (JSON)" })
    .option('datasets', { type: 'number', default: 20_000 })
    .option('pairs', { type: 'number', default: 20 })
    .option('round-ms', { type: 'number', default: 1500 })
    .strict()
    .parse();
  const Old =
    argv.old === undefined
      ? (EtcdConfigurationStore as StoreClass)
      : ((await import(path.resolve(argv.old))) as { EtcdConfigurationStore: StoreClass }).EtcdConfigurationStore;
  const New =
    argv.new === undefined
      ? (EtcdConfigurationStore as StoreClass)
      : ((await import(path.resolve(argv.new))) as { EtcdConfigurationStore: StoreClass }).EtcdConfigurationStore;
  const etcd = await EtcdTestCluster.start();
  const floorClient = new Etcd3({ hosts: etcd.endpoints });
  const floorNs = floorClient.namespace(`/floor-${randomUUID()}/`);
  await floorNs.put('head').value('{}').exec();
  let floorRev = Number((await floorNs.get('head').exec()).kvs[0]?.mod_revision ?? 0);
  let floorVersion = 0;
  const floor = async (): Promise<void> => {
    floorVersion += 1;
    const res = await floorNs
      .if('head', 'Mod', '==', floorRev)
      .then(
        floorNs.put('head').value(JSON.stringify({ version: floorVersion })),
        floorNs.put(`log/${floorVersion}`).value('{}'),
      )
      .commit();
    floorRev = Number(res.header.revision);
  };
  const node = randomUUID();
  let seed: Configuration = registerNode(emptyConfiguration, { uuid: node, host: '10.0.0.1' });
  for (let i = 0; i < argv.datasets; i++)
    seed = createDataset(seed, { primary: node, metadata: { name: `vol-${i}` } }).config;
  const variants = [
    { label: `A (${argv.old ?? 'this build'} ${argv['a-options']})`, Store: Old, options: argv['a-options'] },
    { label: `B (${argv.new ?? 'this build'} ${argv['b-options']})`, Store: New, options: argv['b-options'] },
  ].map((v) => {
    const options = JSON.parse(v.options) as Partial<EtcdStoreOptions>;
    const store = new v.Store({
      ...options,
      endpoints: etcd.endpoints,
      prefix: `/ab-${randomUUID()}`,
      snapshotEvery: 1e9,
    });
    return { ...v, store, config: emptyConfiguration, rounds: [] as number[][], foldDoneInRound: 0 };
  });
  try {
    for (const v of variants) {
      await v.store.replaceAll(seed, true);
      v.config = await v.store.load();
    }
    for (let p = 0; p < argv.pairs; p++) {
      for (const v of variants) {
        // A few records, so the fold has something newer than the stored snapshot to fold.
        for (let i = 0; i < 3; i++) {
          const next = createDataset(v.config, { primary: node }).config;
          await v.store.commit(next, v.config);
          v.config = next;
        }
        let done = false;
        const fold = v.store.snapshot().then(() => (done = true));
        const out: number[] = [];
        const t0 = performance.now();
        while (performance.now() - t0 < argv['round-ms']) {
          const next = createDataset(v.config, { primary: node }).config;
          const started = performance.now();
          await v.store.commit(next, v.config);
          out.push(performance.now() - started);
          v.config = next;
          await floor();
        }
        if (done) v.foldDoneInRound += 1;
        await fold;
        v.rounds.push(out);
      }
    }
    const p99s = variants.map((v) => v.rounds.map((r) => stats(r).p99_ms));
    let bLower = 0;
    for (let i = 0; i < argv.pairs; i++) if ((p99s[1]?.[i] ?? NaN) < (p99s[0]?.[i] ?? NaN)) bLower += 1;
    for (const [i, v] of variants.entries()) {
      const all = stats(v.rounds.flat());
      const over = v.rounds.map((r) => r.filter((x) => x >= TARGET_MS).length);
      process.stdout.write(
        `${v.label}: ${all.n} commits, p50 ${all.p50_ms} / p99 ${all.p99_ms} / max ${all.max_ms} ms; per round p99 median ` +
          `${median(p99s[i] ?? [])} ms, p50 median ${median(v.rounds.map((r) => stats(r).p50_ms))} ms, over ${TARGET_MS} ms ` +
          `median ${median(over)} (${over.reduce((a, b) => a + b, 0)} in all); fold done within the round ${v.foldDoneInRound} of ${argv.pairs}\n`,
      );
    }
    process.stdout.write(`B lower round p99 in ${bLower} of ${argv.pairs} pairs\n`);
  } finally {
    for (const v of variants) await v.store.close();
    floorClient.close();
    await etcd.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`foldAb failed: ${String(err)}\n`);
    process.exit(1);
  },
);
