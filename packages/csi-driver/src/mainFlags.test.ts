import { execFileSync, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { PACKAGE_DIR } from './proto';

// A node that gets past the flags loads csi.proto next: fetched here, not left to whichever suite ran first (stop 44's
// CI: on two unit workers this file ran before any suite that fetches it, and failed on CSI_PROTO_MISSING).
beforeAll(() => {
  execFileSync('bash', [path.join(PACKAGE_DIR, 'scripts/fetch-proto.sh')], { stdio: 'inherit' });
}, 120_000);

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

  it('refuses an --unused-release-after that is not 0 or at least 5 seconds (review FRK-6); 0 passes the check', () => {
    const run = (after: string) =>
      spawnSync(
        process.execPath,
        [
          path.join(__dirname, 'main.js'),
          '--mode',
          'controller',
          '--endpoint',
          '/nonexistent/csi.sock',
          '--unused-release-after',
          after,
        ],
        { encoding: 'utf8', timeout: 15_000 },
      );
    for (const after of ['abc', '-1', '4.9']) {
      const r = run(after);
      expect(r.signal).toBeNull();
      expect({ after, status: r.status }).toEqual({ after, status: 1 });
      expect(r.stderr).toMatch(
        /--unused-release-after .* is neither 0 \(never release\) nor a number of seconds of at least 5/,
      );
    }
    for (const after of ['0', '5']) {
      // Past the flags: it fails only at the socket, which cannot be made there.
      const r = run(after);
      expect(r.signal).toBeNull();
      expect(r.stderr).not.toMatch(/--unused-release-after/);
      expect(r.stderr).toMatch(/nonexistent/);
    }
  }, 120_000); // five node starts, each slow on a loaded host
});
