/** `flocker-ca` as people run it: usage errors exit 2 like `flocker`, CA failures 1 (issue 21). */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BIN = join(__dirname, '..', 'flocker-ca.js');

function flockerCa(...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('flocker-ca', () => {
  it('exits 2 for usage errors, naming the problem', () => {
    const unknown = flockerCa('frobnicate');
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/^flocker-ca: Unknown argument: frobnicate\nRun with --help for usage\./);
    expect(flockerCa('initialize').code).toBe(2);
    expect(flockerCa().code).toBe(2);
  });

  it('exits 1 when the CA itself fails (e.g. one exists already)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'flocker-ca-cmd-'));
    try {
      expect(flockerCa('initialize', 'c1', '--outputpath', dir).code).toBe(0);
      const again = flockerCa('initialize', 'c1', '--outputpath', dir);
      expect(again.code).toBe(1);
      expect(again.err).toMatch(/^flocker-ca: /);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('shows its own name in the examples', () => {
    const help = flockerCa('initialize', '--help');
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/flocker-ca initialize mycluster/);
    expect(flockerCa('create-api-certificate', '--help').out).toMatch(/flocker-ca create-api-certificate alice/);
  });
});
