import { spawnSync } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import * as path from 'node:path';

describe('createAgentLogger', () => {
  it('keeps the agent running when its log output is a full disk (/dev/full: every write fails with ENOSPC)', () => {
    const script = `
      const { createAgentLogger } = require(${JSON.stringify(path.join(__dirname, 'logger.js'))});
      const logger = createAgentLogger('debug');
      for (let i = 0; i < 200; i++) logger.info('converging', { i, pad: 'x'.repeat(500) });
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
