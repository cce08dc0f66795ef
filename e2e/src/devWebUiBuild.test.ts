/**
 * s26 USER-W: `./dev up` built the web UI app with Vite on every run (6 of its 7 s with everything up), and `./dev up`
 * is how a user starts a process that stopped: a control service killed and started again that way was away for 14 s,
 * and the node fences itself (kills its containers) at 15 s. scripts/env.sh's flocker_webui_build_needed tells whether
 * the app's inputs changed since its last build. Runs the real function in bash on a stand-in checkout. No root, no
 * daemons.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ENV_SH = path.resolve(__dirname, '..', '..', 'scripts', 'env.sh');
const UP_SH = path.resolve(__dirname, '..', '..', 'scripts', 'up.sh');

/** The app's inputs, as paths in a checkout. */
const INPUTS = [
  'packages/web-ui/src/app/App.tsx',
  'packages/web-ui/src/model/view.ts',
  'packages/web-ui/index.html',
  'packages/web-ui/vite.config.mts',
  'packages/web-ui/package.json',
  'packages/web-ui/tsconfig.app.json',
  'packages/api/src/schemas.ts',
  'packages/runtime/src/index.ts',
  'package-lock.json',
];
const BUILT = 'packages/web-ui/dist/app/index.html';

let root: string;

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-webui-build-'));
  const past = new Date(Date.now() - 3600_000);
  for (const f of [...INPUTS, 'packages/cli/src/main.ts', 'packages/web-ui/dist/index.js']) write(f, past);
  // As a checkout's directories are: older than a build made after it.
  for (const d of fs.readdirSync(root, { recursive: true, withFileTypes: true }))
    if (d.isDirectory()) fs.utimesSync(path.join(d.parentPath, d.name), past, past);
});

afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

function write(file: string, mtime: Date): void {
  const p = path.join(root, file);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, file);
  fs.utimesSync(p, mtime, mtime);
}

/** flocker_webui_build_needed ROOT (exit status 0: build). */
function needed(): boolean {
  try {
    execFileSync('bash', ['-c', 'source "$0"; flocker_webui_build_needed "$1"', ENV_SH, root], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000);

it('no app built yet: build', () => {
  expect(needed()).toBe(true);
});

it('built after every input changed: no build', () => {
  write(BUILT, minutesAgo(30));
  expect(needed()).toBe(false);
});

it.each(INPUTS)('%s changed since the build: build', (input) => {
  write(BUILT, minutesAgo(30));
  write(input, minutesAgo(1));
  expect(needed()).toBe(true);
});

it("a file taken out of the app's sources (its directory changed): build", () => {
  write(BUILT, minutesAgo(30));
  fs.rmSync(path.join(root, 'packages/web-ui/src/model/view.ts'));
  expect(needed()).toBe(true);
});

it('a file the app does not bundle (the CLI, the model tsc builds) changed: no build', () => {
  write(BUILT, minutesAgo(30));
  write('packages/cli/src/main.ts', minutesAgo(1));
  write('packages/web-ui/dist/index.js', minutesAgo(1));
  expect(needed()).toBe(false);
});

it('./dev up builds the app only when flocker_webui_build_needed says so', () => {
  const up = fs.readFileSync(UP_SH, 'utf8');
  const build = up.split('\n').find((l) => l.includes('npm run build') && l.includes('@flocker/web-ui'));
  expect(build).toMatch(/flocker_webui_build_needed "\$ROOT" && /);
});
