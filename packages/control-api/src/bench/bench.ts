/**
 * Benchmark of the control service at scale, over loopback: 10,000 datasets, 1,000
 * simulated agents long-polling. Runs flocker-control as a child process (so its RSS
 * is its own) and prints a markdown table; `--out file.json` also writes JSON.
 *   node packages/control-api/dist/bench/bench.js --out bench.json [--datasets 10000 --agents 1000]
 */
import { type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { createConnectionPool, FlockerClient, type NodeReport } from '@flocker/api';
import { EtcdTestCluster } from '../testing/etcdCluster';
import { AgentFleet } from './agents';
import { pooled, rssMiB, startServer, stats, stopServer, timed } from './harness';

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .option('out', { type: 'string', describe: 'Write the results as JSON here' })
    .option('datasets', { type: 'number', default: 10_000 })
    .option('agents', { type: 'number', default: 1_000 })
    .option('keep-alive', {
      type: 'boolean',
      default: true,
      describe: 'Agents reuse their connection between long-polls, as real agents do',
    })
    .option('samples', { type: 'number', default: 200, describe: 'Requests per latency measurement' })
    // 40 creates 1 s apart until session 15: that p99 was sorted[39], the largest of 40, one stall of the host's.
    // 200 give a p99 with 2 samples above it; 250 ms is still 50 times what a create's fan-out takes (one agent woken).
    .option('polled-samples', {
      type: 'number',
      default: 200,
      describe:
        'Creates timed with agents long-polling, each followed by a pause (at most --samples); below 100 their p99 ' +
        'is their largest',
    })
    .option('polled-gap-ms', {
      type: 'number',
      default: 250,
      describe: 'The pause after each of those creates (its fan-out settles)',
    })
    .option('raw-out', { type: 'string', describe: 'Also write every timed sample (ms) of each measurement here' })
    .option('store', {
      type: 'string',
      default: 'file',
      choices: ['file', 'etcd'],
      describe:
        'etcd: a 3-member etcd cluster on loopback (scripts/etcd.sh installs etcd), and a failover measurement with a second replica',
    })
    .option('server-node-arg', {
      type: 'string',
      array: true,
      default: [] as string[],
      describe:
        "Extra node flags for the server (after the #! line's own), e.g. --cpu-prof (it is stopped with SIGTERM so profiles get written)",
    })
    .strict()
    .help()
    .parse();
  const dir = mkdtempSync(path.join(tmpdir(), 'flocker-bench-'));
  const etcd = argv.store === 'etcd' ? await EtcdTestCluster.start() : undefined;
  const storeArgs =
    etcd === undefined
      ? []
      : ['--store', 'etcd', '--etcd-endpoints', etcd.endpoints.join(','), '--etcd-prefix', `/bench-${randomUUID()}`];
  let second: ChildProcess | undefined;
  const { child, url } = await startServer(dir, argv['server-node-arg'], storeArgs);
  // Real agents keep their connection open between long-polls (the client's default
  // dispatcher); --no-keep-alive opens a connection per request instead.
  const pool = argv['keep-alive'] ? undefined : createConnectionPool(argv.agents + 64);
  const client = new FlockerClient({
    baseUrl: url,
    ...(pool !== undefined ? { dispatcher: pool } : {}),
    timeoutMs: 60_000,
  });
  const log = (msg: string): void => void process.stderr.write(`bench: ${msg}\n`);
  try {
    const nodes = Array.from({ length: argv.agents }, () => randomUUID());
    const datasets = Array.from({ length: argv.datasets }, (_, i) => ({
      id: randomUUID(),
      node: nodes[i % nodes.length] as string,
    }));
    const report = (uuid: string, i: number, withData: boolean): NodeReport => ({
      uuid,
      era: `era-${i}`,
      host: `10.${(i >> 8) & 255}.${i & 255}.1`,
      instance_id: `i-${i}`,
      backend: 'loopback',
      manifestations: withData
        ? datasets
            .filter((d) => d.node === uuid)
            .map((d) => ({
              dataset_id: d.id,
              blockdevice_id: `b-${d.id}`,
              size: 67108864,
              status: 'mounted' as const,
              path: `/flocker/${d.id}`,
            }))
        : [],
      errors: [],
    });

    log(`registering ${nodes.length} nodes`);
    await pooled([...nodes.entries()], 64, async ([i, n]) => void (await client.reportNodeState(report(n, i, false))));
    log(`creating ${datasets.length} datasets`);
    const seedStart = performance.now();
    await pooled(
      datasets,
      64,
      async (d) =>
        void (await client.createDataset({
          primary: d.node,
          dataset_id: d.id,
          metadata: { name: `vol-${d.id.slice(0, 8)}` },
        })),
    );
    const seedSeconds = (performance.now() - seedStart) / 1000;
    log(`seeded in ${seedSeconds.toFixed(1)} s; nodes report their manifestations`);
    await pooled([...nodes.entries()], 64, async ([i, n]) => void (await client.reportNodeState(report(n, i, true))));

    log('measuring creates without long-polls (sequential, then 8 concurrent)');
    const createSeq: number[] = [];
    for (let i = 0; i < argv.samples; i++) {
      createSeq.push(await timed(() => client.createDataset({ primary: nodes[i % nodes.length] as string })));
    }
    const createConc: number[] = [];
    await pooled(
      Array.from({ length: argv.samples }, (_, i) => i),
      8,
      async (i) => {
        createConc.push(await timed(() => client.createDataset({ primary: nodes[i % nodes.length] as string })));
      },
    );

    // 1,000 agents long-poll for what concerns them, re-polling after every answer (in a worker thread).
    const agents = await AgentFleet.start(
      nodes.map((node) => ({ node, url })),
      { keepAlive: argv['keep-alive'] },
    );
    await new Promise((r) => setTimeout(r, 2000));

    log('measuring reads');
    const readConfig: number[] = [];
    const readState: number[] = [];
    const readConfigGzip: number[] = [];
    // Plain, as FlockerClient reads (no Accept-Encoding); fetch itself asks for gzip unless told otherwise, and a
    // whole list is then sent gzipped (issue 23) and unpacked by the client: measured as its own row.
    const plain = { headers: { 'accept-encoding': 'identity' } };
    for (let i = 0; i < argv.samples; i++) {
      readConfig.push(await timed(async () => (await fetch(`${url}/v1/configuration/datasets`, plain)).text()));
      readState.push(await timed(async () => (await fetch(`${url}/v1/state/datasets`, plain)).text()));
      readConfigGzip.push(await timed(async () => (await fetch(`${url}/v1/configuration/datasets`)).text()));
    }

    // A change only wakes the agents whose view it touches: a snapshot asked for is in every view.
    log('measuring fan-out (a snapshot asked for: every view lists it)');
    let t0 = NaN;
    const fan = await agents.fanout(async () => {
      t0 = performance.timeOrigin + performance.now();
      await client.createSnapshot({ dataset_id: (datasets[0] as { id: string }).id });
    });
    const reached = fan.reached;
    const fanoutMs = reached === nodes.length ? fan.lastAt - t0 : NaN;
    await new Promise((r) => setTimeout(r, 1000));

    log('measuring creates with agents long-polling (each after the previous fan-out settled)');
    const createPolled: number[] = [];
    for (let i = 0; i < Math.min(argv.samples, argv['polled-samples']); i++) {
      createPolled.push(await timed(() => client.createDataset({ primary: nodes[i % nodes.length] as string })));
      await new Promise((r) => setTimeout(r, argv['polled-gap-ms']));
    }
    const createPolledBusy: number[] = [];
    for (let i = 0; i < Math.min(argv.samples, 100); i++) {
      createPolledBusy.push(await timed(() => client.createDataset({ primary: nodes[i % nodes.length] as string })));
    }
    const mem = rssMiB(child.pid as number);

    let failover: { long_poll_ms: number; write_ms: number } | undefined;
    if (etcd !== undefined) {
      log('measuring failover: kill -9 of the replica, a long-poll and a write through a client knowing both');
      const other = await startServer(dir, argv['server-node-arg'], storeArgs);
      second = other.child;
      const fc = new FlockerClient({ baseUrl: `${url},${other.url}`, timeoutMs: 10_000 });
      const poll = fc.waitForCluster((await fc.waitForCluster(undefined, 0)).generation, 30_000);
      await new Promise((r) => setTimeout(r, 200));
      // The simulated agents talk to the killed replica only: their failing polls just end them.
      await agents.stop();
      const killedAt = performance.now();
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await poll;
      const pollMs = performance.now() - killedAt;
      await fc.createDataset({ primary: nodes[0] as string });
      failover = { long_poll_ms: Math.round(pollMs), write_ms: Math.round(performance.now() - killedAt) };
      await exited;
    }

    await agents.stop();
    await stopServer(child);

    const results = {
      datasets: argv.datasets,
      agents: argv.agents,
      keep_alive: argv['keep-alive'],
      seed_seconds: Math.round(seedSeconds * 10) / 10,
      get_configuration_datasets: stats(readConfig),
      get_state_datasets: stats(readState),
      get_configuration_datasets_gzip: stats(readConfigGzip),
      create_dataset_sequential: stats(createSeq),
      create_dataset_8_concurrent: stats(createConc),
      create_dataset_agents_polling: stats(createPolled),
      create_dataset_back_to_back_agents_polling: stats(createPolledBusy),
      fanout_ms: Math.round(fanoutMs),
      fanout_agents_reached: reached,
      agent_poll_errors: fan.errors,
      rss_mib: mem.rss,
      peak_rss_mib: mem.hwm,
      targets: {
        read_p99_ms: 50,
        create_p99_ms: etcd === undefined ? 20 : 30,
        fanout_ms: 1000,
        rss_mib: 300,
        ...(etcd !== undefined ? { failover_ms: 2000 } : {}),
      },
      store: argv.store,
      ...(failover !== undefined ? { failover } : {}),
    };
    const ok = (v: number, limit: number): string => (v < limit ? 'yes' : '**no**');
    const rows = [
      [
        'GET /v1/configuration/datasets (plain) p50 / p99',
        `${results.get_configuration_datasets.p50_ms} / ${results.get_configuration_datasets.p99_ms} ms`,
        '< 50 ms',
        ok(results.get_configuration_datasets.p99_ms, 50),
      ],
      [
        'GET /v1/state/datasets (plain) p50 / p99',
        `${results.get_state_datasets.p50_ms} / ${results.get_state_datasets.p99_ms} ms`,
        '< 50 ms',
        ok(results.get_state_datasets.p99_ms, 50),
      ],
      [
        'GET /v1/configuration/datasets, gzipped and unpacked by the client (fetch default), p50 / p99',
        `${results.get_configuration_datasets_gzip.p50_ms} / ${results.get_configuration_datasets_gzip.p99_ms} ms`,
        '(info)',
        '-',
      ],
      [
        'create (sequential, no polls) p50 / p99',
        `${results.create_dataset_sequential.p50_ms} / ${results.create_dataset_sequential.p99_ms} ms`,
        '< 20 ms',
        ok(results.create_dataset_sequential.p99_ms, 20),
      ],
      [
        'create (8 concurrent, no polls) p50 / p99',
        `${results.create_dataset_8_concurrent.p50_ms} / ${results.create_dataset_8_concurrent.p99_ms} ms`,
        '< 20 ms',
        ok(results.create_dataset_8_concurrent.p99_ms, 20),
      ],
      [
        'create, agents long-polling, p50 / p99',
        `${results.create_dataset_agents_polling.p50_ms} / ${results.create_dataset_agents_polling.p99_ms} ms`,
        '< 20 ms',
        ok(results.create_dataset_agents_polling.p99_ms, 20),
      ],
      [
        'create back-to-back during fan-outs p50 / p99',
        `${results.create_dataset_back_to_back_agents_polling.p50_ms} / ${results.create_dataset_back_to_back_agents_polling.p99_ms} ms`,
        '(info)',
        '-',
      ],
      [
        `fan-out of a change in every view to ${argv.agents} agents`,
        `${results.fanout_ms} ms (${reached} reached${fan.errors > 0 ? `; ${fan.errors} failed polls retried` : ''})`,
        '< 1000 ms',
        ok(results.fanout_ms, 1000),
      ],
      [
        'control service RSS (peak)',
        `${results.rss_mib} MiB (${results.peak_rss_mib} MiB)`,
        '< 300 MiB',
        ok(results.peak_rss_mib, 300),
      ],
    ];
    if (failover !== undefined) {
      // With etcd every write is a quorum round trip: the create target is 30 ms.
      for (const r of rows)
        if (r[2] === '< 20 ms') r.splice(2, 2, '< 30 ms', ok(Number(/\/ ([\d.]+) ms/.exec(r[1] as string)?.[1]), 30));
      rows.push([
        'failover after kill -9 of a replica: long-poll answered / write done',
        `${failover.long_poll_ms} / ${failover.write_ms} ms`,
        '< 2000 ms',
        ok(failover.write_ms, 2000),
      ]);
    }
    const store = argv.store === 'etcd' ? 'etcd store (3 members, 2 replicas for failover); ' : '';
    const connections = argv['keep-alive'] ? 'keep-alive connections' : 'a new connection per request';
    process.stdout.write(
      `\n${store}${argv.datasets} datasets, ${argv.agents} long-polling agents (${connections}), ` +
        `seeded in ${results.seed_seconds} s\n\n` +
        '| metric | measured | target | met |\n|---|---|---|---|\n' +
        `${rows.map((r) => `| ${r.join(' | ')} |`).join('\n')}\n`,
    );
    if (argv.out !== undefined) writeFileSync(argv.out, `${JSON.stringify(results, null, 2)}\n`);
    if (argv['raw-out'] !== undefined) {
      const raw = { createSeq, createConc, createPolled, createPolledBusy, readConfig, readState, readConfigGzip };
      writeFileSync(argv['raw-out'], `${JSON.stringify(raw)}\n`);
    }
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    if (second !== undefined) await stopServer(second);
    await etcd?.stop();
    await pool?.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${String(err)}\n`);
    process.exit(1);
  },
);
