import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
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
});
