import { spawnSync } from 'node:child_process';
import { CONTROL_ENV, CONTROL_NODE_FLAGS } from '@flocker/control-api';
import { defaultCommands } from './Cluster';

describe("the cluster harness's control service command", () => {
  it('runs node with the flags and environment an installed flocker-control has (nodeFlags.ts)', () => {
    const argv = defaultCommands.control({ port: 4523, dataDir: '/tmp/x', nodeTimeoutSeconds: 10, tlsDir: '/tmp/pki' });
    const main = argv.findIndex((a) => a.endsWith('packages/control-api/dist/main.js'));
    expect(main).toBeGreaterThan(0);
    // The same command line up to the script, with a probe in the script's place: what node really runs with.
    const [cmd, ...args] = [
      ...argv.slice(0, main),
      '-p',
      'JSON.stringify({ flags: process.execArgv, env: process.env.MALLOC_ARENA_MAX })',
    ];
    const probe = spawnSync(cmd, args, { encoding: 'utf8', env: { PATH: process.env.PATH } });
    expect(probe.status).toBe(0);
    const seen = JSON.parse(probe.stdout) as { flags: string[]; env: string | undefined };
    expect(seen.flags).toEqual(expect.arrayContaining([...CONTROL_NODE_FLAGS]));
    expect(seen.env).toBe(CONTROL_ENV.MALLOC_ARENA_MAX);
  });
});
