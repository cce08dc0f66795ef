import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

describe('flocker-csi flags', () => {
  it('refuses a --metrics-port that is no port: exit 1 naming the flag, nothing started', () => {
    for (const port of ['abc', '-1', '65536']) {
      const run = spawnSync(
        process.execPath,
        [
          path.join(__dirname, 'main.js'),
          '--mode',
          'controller',
          '--endpoint',
          '/nonexistent/csi.sock',
          '--metrics-port',
          port,
        ],
        { encoding: 'utf8', timeout: 15_000 },
      );
      expect(run.signal).toBeNull();
      expect(run.status).toBe(1);
      expect(run.stderr).toMatch(/--metrics-port .* is not a port \(0 to 65535\)/);
    }
  });
});
