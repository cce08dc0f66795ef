/**
 * How long one turn of the event loop takes while a heartbeat tick writes to many watch connections,
 * by slice size (issue 23): a plain node:http server holding N streaming answers (real loopback
 * sockets, read by a child process), a tick writing one heartbeat Buffer to each, `slice` per turn
 * with setImmediate between, as agentWatch's ticker does. A request waits for the turn in progress
 * at each of its steps, so the turn is what a tick adds to each step. A response's write is paid when
 * it uncorks (after the slice's loop, in the same turn): timing the loop alone misses most of it.
 *   node packages/control-api/dist/bench/heartbeatTurns.js [--connections 3000] [--slices 500,64] [--ticks 20]
 */
import { fork } from 'node:child_process';
import { Agent, createServer, get, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';

const HEARTBEAT = Buffer.from('\n');

/** The child: opens `n` streaming GETs to the port and reads them, then says 'ready'. */
function readers(n: number, port: number): void {
  const agent = new Agent({ keepAlive: true, maxSockets: Infinity });
  let open = 0;
  for (let i = 0; i < n; i++)
    get({ port, agent, path: '/', host: '127.0.0.1' }, (res) => {
      res.resume();
      if (++open === n) process.send?.('ready');
    });
}

/** One tick over `answers`, `slice` per turn: each turn's duration (from its start to the next turn's). */
function tick(answers: ServerResponse[], slice: number): Promise<number[]> {
  return new Promise((resolve) => {
    const turns: number[] = [];
    let i = 0;
    let started = performance.now();
    const turn = (): void => {
      const now = performance.now();
      if (i > 0) turns.push(now - started);
      started = now;
      if (i >= answers.length) return resolve(turns);
      const end = Math.min(i + slice, answers.length);
      for (; i < end; i++) answers[i]?.write(HEARTBEAT);
      setImmediate(turn);
    };
    turn();
  });
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const ms = (x: number): string => x.toFixed(2);

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .option('connections', { type: 'number', default: 3000 })
    .option('slices', { type: 'string', default: '500,64', describe: 'Watchers per turn to compare' })
    .option('ticks', { type: 'number', default: 20, describe: 'Ticks per slice size (interleaved)' })
    .option('readers-of', { type: 'number', hidden: true })
    .strict()
    .parse();
  if (argv['readers-of'] !== undefined) return readers(argv.connections, argv['readers-of']);
  const slices = argv.slices.split(',').map(Number);
  const answers: ServerResponse[] = [];
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    res.flushHeaders();
    answers.push(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const child = fork(__filename, ['--connections', String(argv.connections), '--readers-of', String(port)]);
  await new Promise((r) => child.once('message', r));
  await new Promise((r) => setTimeout(r, 500));
  const per = new Map<number, { median: number[]; longest: number[]; whole: number[] }>(
    slices.map((s) => [s, { median: [], longest: [], whole: [] }]),
  );
  for (let t = 0; t < argv.ticks; t++)
    for (const s of slices) {
      const turns = await tick(answers, s);
      const r = per.get(s);
      r?.median.push(median(turns));
      r?.longest.push(Math.max(...turns));
      r?.whole.push(turns.reduce((a, b) => a + b, 0));
      await new Promise((done) => setTimeout(done, 50));
    }
  for (const [s, r] of per)
    process.stdout.write(
      `${argv.connections} connections, ${s} per turn (median of ${argv.ticks} ticks): median turn ${ms(median(r.median))} ms, ` +
        `longest turn ${ms(median(r.longest))} ms, whole tick ${ms(median(r.whole))} ms\n`,
    );
  child.kill();
  server.closeAllConnections();
  server.close();
}

main().catch((err: unknown) => {
  process.stderr.write(`heartbeatTurns failed: ${String(err)}\n`);
  process.exit(1);
});
