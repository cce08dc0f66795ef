import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { logToFullDisk } from '@flocker/runtime/testing';

/** The JSON lines a child process's createLogger(level) writes for one debug and one info line. */
function linesAt(level: string): Record<string, unknown>[] {
  const script = `const l = require(${JSON.stringify(path.join(__dirname, 'startVolumePlugin.js'))}).createLogger(${JSON.stringify(level)}); l.debug('d'); l.info('i');`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('the plugin logger (createLogger)', () => {
  it('keeps the plugin running when its log output is a full disk (/dev/full: every write fails with ENOSPC)', () => {
    expect(logToFullDisk(path.join(__dirname, 'startVolumePlugin.js'), 'createLogger')).toEqual({
      status: 42,
      stderr: '',
    });
  });

  it('stamps every line with a sub-ms wall clock t at debug level (tracing across processes), and none at info', () => {
    const before = Date.now();
    const debug = linesAt('debug');
    expect(debug.map((l) => l.message)).toEqual(['d', 'i']);
    for (const l of debug) {
      const t = Number(l.t);
      expect(t).toBeGreaterThanOrEqual(before - 1);
      expect(t).toBeLessThanOrEqual(Date.now() + 1);
    }
    const info = linesAt('info');
    expect(info.map((l) => l.message)).toEqual(['i']);
    expect(info[0]).not.toHaveProperty('t');
  });
});
