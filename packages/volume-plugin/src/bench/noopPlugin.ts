/**
 * A no-op legacy Docker volume plugin, for the benchmark only (issue 23): it measures what
 * Docker's plugin mechanism itself costs a `docker run` / `docker volume rm`, whatever the
 * plugin does. Every call is answered at once from memory; the only I/O is the mkdir of a
 * volume's directory (its mountpoint) at Create. Nothing is durable, and nothing is logged unless asked:
 * with --log FILE each call is a JSON line of the plugin's own `plugin call` shape (call, request's Name,
 * duration_ms, `t` the wall clock in ms at the answer), so trace-docker-run.ts splits the floor's commands as the
 * Flocker plugin's (issue 23). The bench runs it without.
 *
 *   node packages/volume-plugin/dist/bench/noopPlugin.js --socket /run/docker/plugins/NAME.sock --root DIR [--log FILE]
 *
 * Not a plugin to use: no limits on bodies, no validation beyond what the floor needs.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';

const CONTENT_TYPE = 'application/vnd.docker.plugins.v1.1+json';

/** The no-op driver's answers: volumes are names in a set, each a directory under `root`. */
export class NoopVolumes {
  private readonly names = new Set<string>();
  constructor(private readonly root: string) {}

  /** The JSON answer of one plugin call (`Err` non-empty when refused). */
  call(method: string, body: Readonly<Record<string, unknown>>): object {
    const name = typeof body.Name === 'string' ? body.Name : '';
    const dir = path.join(this.root, encodeURIComponent(name));
    switch (method) {
      case '/Plugin.Activate':
        return { Implements: ['VolumeDriver'] };
      case '/VolumeDriver.Capabilities':
        return { Capabilities: { Scope: 'local' }, Err: '' };
      case '/VolumeDriver.List':
        return { Volumes: [...this.names].map((n) => ({ Name: n })), Err: '' };
      case '/VolumeDriver.Create':
        if (name === '') return { Err: 'no name' };
        fs.mkdirSync(dir, { recursive: true });
        this.names.add(name);
        return { Err: '' };
      case '/VolumeDriver.Get':
        return this.names.has(name) ? { Volume: { Name: name, Mountpoint: dir }, Err: '' } : { Err: 'no such volume' };
      case '/VolumeDriver.Path':
      case '/VolumeDriver.Mount':
        return this.names.has(name) ? { Mountpoint: dir, Err: '' } : { Err: 'no such volume' };
      case '/VolumeDriver.Unmount':
        return { Err: '' };
      case '/VolumeDriver.Remove':
        // The directory stays (no I/O): the bench removes the whole root at the end.
        this.names.delete(name);
        return { Err: '' };
      default:
        return { Err: `${method} is not implemented` };
    }
  }
}

/** One answered call, in the Flocker plugin's `plugin call` log shape (see trace-docker-run.ts). */
export interface NoopCallLine {
  message: 'plugin call';
  call: string;
  request: { Name?: string };
  duration_ms: number;
  /** Wall clock (ms since the epoch, sub-ms) when the answer was sent. */
  t: string;
}

export function createNoopPluginServer(root: string, log?: (line: NoopCallLine) => void): http.Server {
  const volumes = new NoopVolumes(root);
  return http.createServer((req, res) => {
    const arrived = performance.now();
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body: Readonly<Record<string, unknown>> = {};
      try {
        const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
        if (typeof parsed === 'object' && parsed !== null) body = parsed as Record<string, unknown>;
      } catch {
        // An unreadable body is an empty one here.
      }
      const url = (req.url ?? '').split('?')[0] ?? '';
      let answer: object;
      try {
        answer = volumes.call(url, body);
      } catch (err) {
        answer = { Err: err instanceof Error ? err.message : String(err) };
      }
      const text = JSON.stringify(answer);
      res.writeHead(200, { 'Content-Type': CONTENT_TYPE, 'Content-Length': Buffer.byteLength(text) });
      res.end(text);
      if (log === undefined) return;
      const answered = performance.now();
      log({
        message: 'plugin call',
        call: url,
        request: typeof body.Name === 'string' ? { Name: body.Name } : {},
        duration_ms: answered - arrived,
        t: (performance.timeOrigin + answered).toFixed(3),
      });
    });
  });
}

function main(): void {
  const args = process.argv.slice(2);
  const optional = (name: string): string | undefined => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const opt = (name: string): string => {
    const v = optional(name);
    if (v === undefined)
      throw new Error(`usage: noopPlugin.js --socket PATH --root DIR [--log FILE] (missing ${name})`);
    return v;
  };
  const socket = opt('--socket');
  const root = opt('--root');
  const logFile = optional('--log');
  fs.mkdirSync(root, { recursive: true });
  fs.mkdirSync(path.dirname(socket), { recursive: true });
  fs.rmSync(socket, { force: true });
  // Written synchronously after the answer went out: off the call's own time, in call order.
  const logFd = logFile !== undefined ? fs.openSync(logFile, 'a') : undefined;
  const server = createNoopPluginServer(
    root,
    logFd !== undefined ? (line) => fs.writeSync(logFd, JSON.stringify(line) + '\n') : undefined,
  );
  server.listen(socket, () => process.stdout.write('listening\n'));
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (require.main === module) main();
