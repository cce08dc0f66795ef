/**
 * Host B's receiving side of a local-storage move in its own process (`localBtrfsNode.js serve`), as on another
 * host: the sender and the receiver do not share a CPU thread. Used by the local-move benchmarks.
 */
import { type ChildProcessByStdio, execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { BtrfsEngine } from '@flocker/storage-drivers';
import { z } from 'zod';

const MiB = 1024 * 1024;

/**
 * A's and B's engines on their pools (prepared), and a new dataset on A (twice `mib` in size) holding
 * `mib` MiB of random data written and fsynced: in the dataset's own path, or, with `mountAt`, through
 * its mount at `mountAt`/<id>.
 */
export async function btrfsSource(
  aPool: string,
  bPool: string,
  mib: number,
  mountAt?: string,
): Promise<{ ea: BtrfsEngine; eb: BtrfsEngine; id: string; dataDir: string }> {
  const ea = new BtrfsEngine({ pool: aPool });
  const eb = new BtrfsEngine({ pool: bPool });
  await ea.prepare();
  await eb.prepare();
  const id = randomUUID();
  await ea.createDataset(id, 2 * mib * MiB);
  let dataDir = ea.datasetPath(id);
  if (mountAt !== undefined) {
    dataDir = path.join(mountAt, id);
    await ea.mount(id, dataDir);
  }
  const file = path.join(dataDir, 'data');
  execFileSync('dd', ['if=/dev/urandom', `of=${file}`, 'bs=4M', `count=${mib / 4}`, 'conv=fsync', 'status=none']);
  return { ea, eb, id, dataDir };
}

/** B's node credentials (cluster CA, node certificate and key, PEM). */
export interface ReceiverNode {
  readonly ca: string | Buffer;
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
}

export interface Receiver {
  /** The listener's process: the caller kills it when done (also when `port` fails). */
  readonly child: ChildProcessByStdio<null, Readable, null>;
  /** The port it listens on, once it says so; rejects if it exits first. */
  readonly port: Promise<number>;
}

/**
 * Starts B's listener on `pool` with `node`'s credentials written under `dir`, mounting into `dir`/b-mnt.
 * Options (A/B benchmarks): `name` tells several listeners' certificate directories apart; `writeOutEvery`
 * is the engine's (BtrfsEngineOptions).
 */
export function startReceiver(
  dir: string,
  node: ReceiverNode,
  pool: string,
  o: { name?: string; writeOutEvery?: number } = {},
): Receiver {
  const certDir = path.join(dir, `b-certs${o.name !== undefined ? `-${o.name}` : ''}`);
  fs.mkdirSync(certDir);
  fs.writeFileSync(path.join(certDir, 'cluster.crt'), node.ca);
  fs.writeFileSync(path.join(certDir, 'node.crt'), node.cert);
  fs.writeFileSync(path.join(certDir, 'node.key'), node.key);
  const child = spawn(
    process.execPath,
    [
      path.join(__dirname, 'localBtrfsNode.js'),
      'serve',
      pool,
      certDir,
      '0',
      path.join(dir, 'b-mnt'),
      ...(o.writeOutEvery !== undefined ? [String(o.writeOutEvery)] : []),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = new Promise<number>((resolve, reject) => {
    child.stdout.once('data', (d: Buffer) =>
      resolve(z.object({ port: z.number() }).parse(JSON.parse(d.toString())).port),
    );
    child.once('exit', (code) => reject(new Error(`the listener exited with ${code}`)));
  });
  return { child, port };
}
