/**
 * What the web UI e2e tests (web-ui, web-ui-local) share: Debian's Chromium and a built web UI, and
 * `flocker ui` started on an ephemeral port.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './cluster/Cluster';

const CLI = join(REPO_ROOT, 'packages/cli/dist/main.js');
const WEB_UI = join(REPO_ROOT, 'packages/web-ui');
export const CHROMIUM = '/usr/bin/chromium';

/** Chromium installed (scripts/ensure-chromium.sh) and the web UI built if its dist is missing. */
export function ensureChromiumAndWebUi(): void {
  execFileSync('bash', [join(WEB_UI, 'scripts/ensure-chromium.sh')], { stdio: 'inherit', timeout: 240_000 });
  if (!existsSync(join(WEB_UI, 'dist/app/index.html')))
    execFileSync('npm', ['run', 'build', '-w', '@flocker/web-ui'], {
      cwd: REPO_ROOT,
      stdio: 'inherit',
      timeout: 120_000,
    });
}

/** Start `flocker ui --port 0` and read the URL from its JSON line on stdout. */
export function startUi(env: Record<string, string>): Promise<{ child: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'ui', '--port', '0'], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`flocker ui printed no URL in 15 s: ${err}`)), 15_000);
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (!line) return;
      clearTimeout(timer);
      resolve({ child, url: (JSON.parse(line) as { url: string }).url });
    });
    child.on('exit', (code) => reject(new Error(`flocker ui exited ${code}: ${err}`)));
  });
}
