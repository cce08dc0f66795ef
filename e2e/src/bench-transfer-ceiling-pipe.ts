/**
 * The two sides of bench-transfer-ceiling's node-tcp and node-tls kinds: a minimal Node pipe between
 * `btrfs send` and `btrfs receive` over one connection (each side spawns btrfs, as the agent does), plain
 * TCP or mutual TLS 1.3 with the transfer's ciphers and peer check. Node built-ins only: a short start.
 *   node bench-transfer-ceiling-pipe.js recv <tcp|tls> <port> <certDir> <destDir>
 *   node bench-transfer-ceiling-pipe.js send <tcp|tls> <port> <certDir> <serverNodeUuid> <snapshotPath>
 * certDir holds cluster.crt, node.crt, node.key.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import tls from 'node:tls';

/** The transfer's offer (transfer.ts): TLS 1.3, AES-128-GCM first. */
export const TRANSFER_CIPHERS = 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256';

function credentials(certDir: string): { ca: Buffer; cert: Buffer; key: Buffer } {
  return {
    ca: fs.readFileSync(path.join(certDir, 'cluster.crt')),
    cert: fs.readFileSync(path.join(certDir, 'node.crt')),
    key: fs.readFileSync(path.join(certDir, 'node.key')),
  };
}

function recv(mode: string, port: number, certDir: string, destDir: string): void {
  const receive = spawn('btrfs', ['receive', '-e', destDir], { stdio: ['pipe', 'ignore', 'inherit'] });
  // btrfs receive -e exits at the stream's end marker: the connection is read to its end still (else the
  // sender's last bytes or close meet a reset), and only then does this exit.
  receive.stdin.on('error', () => undefined);
  let code: number | null | undefined;
  let closed = false;
  const exit = (): void => {
    if (code !== undefined && closed) process.exit(code ?? 1);
  };
  receive.once('exit', (c) => {
    code = c;
    exit();
  });
  const onSocket = (socket: net.Socket): void => {
    server.close();
    socket.on('error', () => undefined);
    socket.once('close', () => {
      closed = true;
      exit();
    });
    socket.pipe(receive.stdin);
  };
  const server =
    mode === 'tls'
      ? tls.createServer(
          {
            ...credentials(certDir),
            requestCert: true,
            rejectUnauthorized: true,
            minVersion: 'TLSv1.3',
            ciphers: TRANSFER_CIPHERS,
            honorCipherOrder: true,
          },
          onSocket,
        )
      : net.createServer(onSocket);
  server.listen(port, '127.0.0.1');
}

function send(mode: string, port: number, certDir: string, nodeUuid: string, snapshot: string): void {
  const connected = (socket: net.Socket): void => {
    const child = spawn('btrfs', ['send', '-q', snapshot], { stdio: ['ignore', 'pipe', 'inherit'] });
    child.stdout.pipe(socket);
    socket.on('close', () => process.exit(0));
    child.once('exit', (code) => {
      if (code !== 0) process.exit(code ?? 1);
    });
  };
  if (mode === 'tls') {
    const socket = tls.connect(
      {
        host: '127.0.0.1',
        port,
        ...credentials(certDir),
        minVersion: 'TLSv1.3',
        ciphers: TRANSFER_CIPHERS,
        checkServerIdentity: (_host, cert) =>
          cert.subject.CN === `node-${nodeUuid}` ? undefined : new Error(`not node ${nodeUuid}`),
      },
      () => connected(socket),
    );
  } else {
    const socket = net.connect(port, '127.0.0.1', () => connected(socket));
  }
}

if (require.main === module) {
  const [side, mode, port, certDir, a, b] = process.argv.slice(2);
  if (side === 'recv' && mode !== undefined && certDir !== undefined && a !== undefined)
    recv(mode, Number(port), certDir, a);
  else if (side === 'send' && mode !== undefined && certDir !== undefined && a !== undefined && b !== undefined)
    send(mode, Number(port), certDir, a, b);
  else {
    process.stderr.write(
      'usage: recv <tcp|tls> <port> <certDir> <destDir> | send <tcp|tls> <port> <certDir> <uuid> <snapshot>\n',
    );
    process.exit(2);
  }
}
