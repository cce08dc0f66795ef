import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clientVersion, versionText } from './version';

describe('flocker version', () => {
  it("reads this package's version; unknown when unreadable", () => {
    expect(clientVersion()).toMatch(/^\d+\.\d+\.\d+/);
    const dir = mkdtempSync(join(tmpdir(), 'flocker-version-'));
    try {
      expect(clientVersion(dir)).toBe('unknown');
      writeFileSync(join(dir, 'package.json'), '{"version": "9.9.9"}');
      expect(clientVersion(dir)).toBe('9.9.9');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it('text: both, or why the server is unknown', () => {
    expect(versionText({ client: '1', server: { flocker: '2', error: null } })).toBe(
      'Client:  1 (release)\nServer:  2 (Flocker API version, not a release)',
    );
    expect(versionText({ client: '1', server: { flocker: null, error: 'refused' } })).toMatch(
      /Server: +unknown — refused/,
    );
  });
});
