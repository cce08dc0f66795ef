import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { argsFromEnv, resolveSettings } from '../config';

const UUID = 'dddddddd-dddd-4ddd-8ddd-dddddddddddd';

describe("the managed plugin's settings", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-managed-config-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('reads the settings config.json sets (docker plugin set) from the environment; empty means unset', () => {
    expect(
      argsFromEnv({
        FLOCKER_CONTROL_URL: ' https://c:4523 ',
        FLOCKER_CA_FILE: '',
        FLOCKER_STATE_DIR: '/var/lib/flocker',
        FLOCKER_PROPAGATED_MOUNT: '/mnt/flocker',
        FLOCKER_HOST_MOUNT_SEEN_AT: '/host/flocker',
        PATH: '/usr/bin',
      }),
    ).toEqual({
      controlUrl: 'https://c:4523',
      stateDir: '/var/lib/flocker',
      propagatedMount: '/mnt/flocker',
      hostMountSeenAt: '/host/flocker',
    });
  });

  it("takes the host mount root from agent.yml's node.mount_root, or the flag", async () => {
    const yml = path.join(dir, 'agent.yml');
    fs.writeFileSync(yml, 'version: 1\ncontrol-service: {hostname: c}\nnode: {mount_root: /srv/mnt}\n');
    const base = { agentConfig: yml, nodeUuid: UUID, stateDir: dir, dockerSocket: 'none' };
    const s = await resolveSettings({ ...base, propagatedMount: '/mnt/flocker', hostMountSeenAt: '/host/flocker' });
    expect(s.propagated).toEqual({
      propagatedMount: '/mnt/flocker',
      seenAt: '/host/flocker',
      hostMountRoot: '/srv/mnt',
    });
    const t = await resolveSettings({
      ...base,
      propagatedMount: '/mnt/flocker',
      hostMountSeenAt: '/host/flocker',
      hostMountRoot: '/flocker',
    });
    expect(t.propagated?.hostMountRoot).toBe('/flocker');
    expect((await resolveSettings(base)).propagated).toBeUndefined();
  });

  it('refuses a propagated mount without where the host mount root is seen, and a partial set of TLS files', async () => {
    const base = { controlUrl: 'http://c:1', nodeUuid: UUID, stateDir: dir, dockerSocket: 'none' };
    await expect(resolveSettings({ ...base, propagatedMount: '/mnt/flocker' })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
    });
    await expect(resolveSettings({ ...base, caFile: path.join(dir, 'ca.crt') })).rejects.toThrow(/go together/);
    await expect(
      resolveSettings({ ...base, caFile: 'x', certFile: path.join(dir, 'no.crt'), keyFile: 'y' }),
    ).rejects.toMatchObject({ name: 'VolumePluginError' });
  });
});
