/**
 * One simulated host's side of a local-storage move (issue 24), as its own process so a test can
 * kill -9 it: `serve` runs the node's TLS transfer listener on its btrfs pool; `move` moves a
 * dataset from this node's pool to another node's listener and prints JSON lines (progress, each
 * send, the result). The certificates are the node's (cluster.crt, node.crt, node.key in certDir).
 *
 *   node localBtrfsNode.js serve <pool> <certDir> <port> <mountRoot> [writeOutEveryBytes]
 *   node localBtrfsNode.js move <pool> <certDir> <datasetId> <size> <port> <targetNodeUuid> [catchUpMs] [keepSourceSnapshots]
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BtrfsEngine, moveLocalDataset, TransferClient, TransferServer } from '@flocker/storage-drivers';

function credentials(certDir: string) {
  return {
    ca: readFileSync(join(certDir, 'cluster.crt')),
    cert: readFileSync(join(certDir, 'node.crt')),
    key: readFileSync(join(certDir, 'node.key')),
  };
}

const say = (o: object): void => {
  process.stdout.write(`${JSON.stringify(o)}\n`);
};

async function main(argv: string[]): Promise<void> {
  const [mode, pool, certDir] = argv;
  if (pool === undefined || certDir === undefined) throw new Error('usage: serve|move <pool> <certDir> …');
  const writeOutEvery = mode === 'serve' && argv[5] !== undefined ? Number(argv[5]) : undefined;
  if (writeOutEvery !== undefined && !(writeOutEvery >= 0)) throw new Error(`bad writeOutEveryBytes ${argv[5]}`);
  const engine = new BtrfsEngine({ pool, ...(writeOutEvery !== undefined ? { writeOutEvery } : {}) });
  await engine.prepare();
  if (mode === 'serve') {
    const mountRoot = argv[4];
    if (mountRoot === undefined) throw new Error('usage: serve <pool> <certDir> <port> <mountRoot>');
    const server = new TransferServer({
      engine,
      credentials: credentials(certDir),
      mountPathFor: (datasetId) => join(mountRoot, datasetId),
    });
    const port = await server.listen(Number(argv[3] ?? 0), '127.0.0.1');
    say({ event: 'listening', port });
    return;
  }
  if (mode === 'move') {
    const [, , , datasetId, size, port, targetUuid, catchUpMs, keepSourceSnapshots] = argv;
    if (datasetId === undefined || targetUuid === undefined) throw new Error('usage');
    const result = await moveLocalDataset({
      engine,
      target: new TransferClient({ host: '127.0.0.1', port: Number(port), nodeUuid: targetUuid }, credentials(certDir)),
      datasetId,
      size: Number(size),
      releasePollMs: 20,
      catchUpMs: Number(catchUpMs ?? 2000),
      ...(keepSourceSnapshots !== undefined ? { keepSourceSnapshots: Number(keepSourceSnapshots) } : {}),
      backoffInitialMs: 100,
      backoffMaxMs: 1000,
      progressIntervalMs: 100,
      onRetry: (error, attempt) => say({ event: 'retry', attempt, error }),
      onProgress: (p) => say({ event: 'progress', ...p }),
      onSent: (s) => say({ event: 'sent', ...s }),
    });
    say({ event: 'result', ...result });
    return;
  }
  throw new Error(`unknown mode ${mode}`);
}

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
