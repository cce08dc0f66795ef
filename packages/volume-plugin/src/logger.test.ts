import { spawnSync } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import * as path from 'node:path';

describe('the plugin logger (createLogger)', () => {
  it('keeps the plugin running when its log output is a full disk (/dev/full: every write fails with ENOSPC)', () => {
    const script = `
      const { createLogger } = require(${JSON.stringify(path.join(__dirname, 'startVolumePlugin.js'))});
      const logger = createLogger('debug');
      for (let i = 0; i < 200; i++) logger.info('mount', { i, pad: 'x'.repeat(500) });
      setTimeout(() => { logger.warn('still here'); setTimeout(() => process.exit(42), 50); }, 50);
    `;
    const full = openSync('/dev/full', 'w');
    try {
      const r = spawnSync(process.execPath, ['-e', script], { stdio: ['ignore', full, 'pipe'], timeout: 20_000 });
      expect(r.stderr.toString()).toBe('');
      expect(r.status).toBe(42);
    } finally {
      closeSync(full);
    }
  });
});
