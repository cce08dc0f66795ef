/**
 * A simulated host's daemons do not take the operator's CLI settings (review T2 F2): the README has the user
 * export what `./dev cluster status` prints, and `./dev cluster start|poweron` then started the host's plugin
 * with FLOCKER_CONTROL_URL, an address it cannot reach from inside the host. Pure; the e2e proof is
 * review-t2-cluster-env-leak.test.ts.
 */
import { hostDaemonEnv } from './processes';

it("drops the CLI's and a managed plugin's connection settings, keeps the rest and adds what is asked", () => {
  const env = hostDaemonEnv(
    {
      PATH: '/usr/bin',
      FLOCKER_CONTROL_URL: 'https://10.77.1.2:4523',
      FLOCKER_CA_CERT: '/c/ca.crt',
      FLOCKER_CERT: '/c/admin.crt',
      FLOCKER_KEY: '/c/admin.key',
      FLOCKER_CA_FILE: '/c/ca.crt',
      FLOCKER_STATE_DIR: '/elsewhere',
      FLOCKER_LOG_LEVEL: 'debug',
    },
    { FLOCKER_AGENT_CRASH_AFTER: 'unmount:1' },
  );
  expect(env).toEqual({ PATH: '/usr/bin', FLOCKER_LOG_LEVEL: 'debug', FLOCKER_AGENT_CRASH_AFTER: 'unmount:1' });
});
