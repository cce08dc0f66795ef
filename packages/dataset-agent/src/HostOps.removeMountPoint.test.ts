/** linuxHostOps.removeMountPoint (the offline grow's mount point, see executeAction.offlineGrow.test.ts). */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { linuxHostOps } from './HostOps';

describe('linuxHostOps.removeMountPoint', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'flocker-rmp-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('an empty directory: removed; one gone already: true; one written into: false, kept as it is', async () => {
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    expect(await linuxHostOps.removeMountPoint?.(empty)).toBe(true);
    expect(await linuxHostOps.removeMountPoint?.(empty)).toBe(true);
    const written = join(dir, 'written');
    mkdirSync(written);
    writeFileSync(join(written, 'f'), 'x');
    expect(await linuxHostOps.removeMountPoint?.(written)).toBe(false);
    expect(await linuxHostOps.removeMountPoint?.(join(written, 'f'))).toBe(false);
  });
});
