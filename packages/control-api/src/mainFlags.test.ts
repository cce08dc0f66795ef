import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

describe('flocker-control flags', () => {
  it('refuses a --metrics-port that is no port: exit 1 naming the flag, nothing started', () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'flocker-control-flags-'));
    try {
      for (const port of ['abc', '-1', '65536']) {
        const run = spawnSync(
          process.execPath,
          [
            path.join(__dirname, 'main.js'),
            '--insecure-http',
            '--host',
            '127.0.0.1',
            '--port',
            '0',
            '--data-dir',
            dataDir,
            '--metrics-port',
            port,
          ],
          { encoding: 'utf8', timeout: 15_000 },
        );
        expect(run.signal).toBeNull();
        expect(run.status).toBe(1);
        expect(run.stderr).toMatch(/--metrics-port .* is not a port \(0 to 65535\)/);
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('--help documents --sole-replica, off by default (review s27 F9: in-flight writes applied after a stall)', () => {
    const run = spawnSync(process.execPath, [path.join(__dirname, 'main.js'), '--help'], {
      encoding: 'utf8',
      timeout: 15_000,
    });
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/--sole-replica[\s\S]*only control\s+replica[\s\S]*\[default: false\]/);
  });

  it('--metrics-check-host: loopback (default) or always, documented in --help (review s28 G3)', () => {
    const main = path.join(__dirname, 'main.js');
    const help = spawnSync(process.execPath, [main, '--help'], { encoding: 'utf8', timeout: 15_000 });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/--metrics-check-host[\s\S]*published[\s\S]*\[choices: "loopback", "always"\]/);
    const run = spawnSync(process.execPath, [main, '--insecure-http', '--metrics-check-host', 'yes'], {
      encoding: 'utf8',
      timeout: 15_000,
    });
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/metrics-check-host/);
  });

  it('--help documents --compress-lists, off by default (issue 23: gzip costs more than it saves on a LAN)', () => {
    const run = spawnSync(process.execPath, [path.join(__dirname, 'main.js'), '--help'], {
      encoding: 'utf8',
      timeout: 15_000,
    });
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/--compress-lists[\s\S]*gzipped[\s\S]*\[boolean\] \[default: false\]/);
  });

  it('--allowed-host: documented in --help; a value with a port, or with TLS, exits 1 INVALID_ALLOWED_HOST', () => {
    const main = path.join(__dirname, 'main.js');
    const help = spawnSync(process.execPath, [main, '--help'], { encoding: 'utf8', timeout: 15_000 });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/--allowed-host[\s\S]*--insecure-http[\s\S]*HOST_NOT_ALLOWED[\s\S]*\[array\]/);
    const dataDir = mkdtempSync(path.join(tmpdir(), 'flocker-control-flags-'));
    try {
      for (const args of [
        ['--insecure-http', '--allowed-host', 'control.dev.lan:4523'],
        ['--cert', 'c.crt', '--key', 'c.key', '--ca', 'ca.crt', '--allowed-host', 'control.dev.lan'],
      ]) {
        const run = spawnSync(
          process.execPath,
          [main, '--host', '127.0.0.1', '--port', '0', '--metrics-port', '0', '--data-dir', dataDir, ...args],
          { encoding: 'utf8', timeout: 15_000 },
        );
        expect(run.status).toBe(1);
        expect(run.stderr).toContain('INVALID_ALLOWED_HOST');
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('refuses a --max-connections that is not a positive number', () => {
    for (const max of ['abc', '0', '-5']) {
      const run = spawnSync(process.execPath, [path.join(__dirname, 'main.js'), '--max-connections', max], {
        encoding: 'utf8',
        timeout: 15_000,
      });
      expect(run.status).toBe(1);
      expect(run.stderr).toMatch(/--max-connections .* is not a positive number/);
    }
  });

  it('--max-connections 2: a third open connection is closed at once, the two open ones are answered', async () => {
    // Each dataset agent holds a connection (its long-poll): 10,000 agents fill the default limit.
    const dataDir = mkdtempSync(path.join(tmpdir(), 'flocker-control-flags-'));
    const args = ['--insecure-http', '--host', '127.0.0.1', '--port', '0', '--metrics-port', '0'];
    const child = spawn(
      process.execPath,
      [
        path.join(__dirname, 'main.js'),
        ...args,
        '--data-dir',
        dataDir,
        '--max-connections',
        '2',
        '--log-level',
        'error',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const sockets: Socket[] = [];
    try {
      const url = await new Promise<URL>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (c: Buffer) => {
          out += c.toString();
          const nl = out.indexOf('\n');
          if (nl >= 0) resolve(new URL((JSON.parse(out.slice(0, nl)) as { listening: string }).listening));
        });
        child.once('exit', (code) => reject(new Error(`flocker-control exited (${code})`)));
      });
      const open = (): Promise<Socket> =>
        new Promise((resolve) => {
          const s = connect(Number(url.port), url.hostname, () => resolve(s));
          sockets.push(s);
        });
      const ask = (s: Socket): Promise<string> =>
        new Promise((resolve) => {
          let got = '';
          s.on('data', (c: Buffer) => {
            got += c.toString();
            if (got.includes('\r\n\r\n')) resolve(got);
          });
          s.once('close', () => resolve(got));
          // The refused third is reset when it writes (ECONNRESET) or closed first: either way, no answer.
          s.once('error', () => resolve(got));
          s.write(`GET /v1/version HTTP/1.1\r\nHost: ${url.host}\r\n\r\n`);
        });
      const [a, b] = [await open(), await open()];
      await new Promise((r) => setTimeout(r, 200));
      const third = await open();
      expect(await ask(third)).toBe('');
      expect(await ask(a)).toMatch(/^HTTP\/1\.1 200/);
      expect(await ask(b)).toMatch(/^HTTP\/1\.1 200/);
    } finally {
      for (const s of sockets) s.destroy();
      child.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
