import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { clearImmutableUnder, removeTree } from './removeTree';

// A torn-down cluster keeps its directory (logs) with a fenced, immutable image in its pool: a plain `rm -r` of it
// failed with EPERM until the teardown cleared the flag (session 13 walkthrough).
describe('clearImmutableUnder', () => {
  it('leaves a directory holding an immutable file removable with a plain rm -r', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'flocker-immutable-'));
    const file = path.join(dir, 'pool', 'volumes', 'x.img.fenced-1');
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, 'frozen');
    try {
      execFileSync('chattr', ['+i', file]);
      expect(() => rmSync(dir, { recursive: true, force: true })).toThrow(/EPERM|operation not permitted/i);
      clearImmutableUnder(dir);
      rmSync(dir, { recursive: true, force: true });
      expect(existsSync(dir)).toBe(false);
    } finally {
      removeTree(dir);
    }
  });

  it('does nothing for a directory that is not there', () => {
    expect(() => clearImmutableUnder(path.join(tmpdir(), 'flocker-no-such-dir-' + process.pid))).not.toThrow();
  });
});
