/**
 * schemathesis (PyPI) fuzzes the live control service from its OpenAPI document,
 * over mutual TLS and over plain HTTP: no 5xx, every response matching its schema.
 * scripts/schemathesis.sh installs it into a venv cached per machine (scripts/venv.sh) when missing.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';

const REPO_ROOT = path.resolve(__dirname, '..', '..');

function runScript(): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [path.join(REPO_ROOT, 'scripts/schemathesis.sh')], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

describe('schemathesis against the control service', () => {
  it(
    'finds no server error and no response off its schema (TLS as admin, then plain HTTP)',
    async () => {
      const { code, output } = await runScript();
      if (code !== 0) process.stderr.write(output.slice(-20_000));
      expect(code).toBe(0);
      expect(output.match(/No issues found/g)?.length).toBe(2);
    },
    15 * 60_000,
  );
});
