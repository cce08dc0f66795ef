/**
 * s28 (issue 23 follow-up): right after a control-service restart, `docker run` on b of a volume a's Docker plugin
 * keeps idle. Until a's dataset agent reports again, the views served to a's node leave out the lease hand-over's
 * members (Views.newMembersHidden), so a's plugin cannot hear a request: the control service refused b's lease POST at
 * once, LEASE_HELD "(used there by docker)", and the docker run failed although it would have worked seconds later.
 * Now the request waits (up to --handover-wait) for a to report, or for the lease to go, and goes through. Two
 * simulated hosts with real dockerd, dataset agents and plugins (loopback pool), certificates. Needs root.
 */
import { randomUUID } from 'node:crypto';
import { TINY_IMAGE, waitFor, type Cluster, type ClusterHost, type RunResult } from './cluster';
import { idleLeaseSuite, pluginLog } from './cluster/idleLease';
import { flockerVolumeArgs } from './dockerVolumes';

jest.setTimeout(300_000);

const IDLE_SECONDS = 120;
/** The hand-over wait (5 s) at most twice, and a loaded CI host's room. */
const BOUND_MS = 60_000;

let cluster: Cluster;
let a: ClusterHost;
let b: ClusterHost;

idleLeaseSuite(IDLE_SECONDS, (started, hostA, hostB) => {
  cluster = started;
  [a, b] = [hostA, hostB];
});

function runOn(h: ClusterHost, volume: string, script: string): Promise<RunResult> {
  return h.docker(['run', '--rm', ...flockerVolumeArgs(volume), TINY_IMAGE, 'sh', '-c', script], {
    check: false,
    timeoutMs: 150_000,
  });
}

it('docker run on b right after a control-service restart of a volume idle on a: works, data intact', async () => {
  const v = `idle-restart-${randomUUID().slice(0, 8)}`;
  const logged = pluginLog(a).length;
  const first = await runOn(a, v, 'echo one > /data/f; sync');
  expect({ code: first.code, stderr: first.stderr }).toEqual({ code: 0, stderr: '' });
  await waitFor(
    "a's plugin to keep the lease",
    () =>
      pluginLog(a)
        .slice(logged)
        .split('\n')
        .some((l) => l.includes('keeping the lease of a volume no container here uses') && l.includes(v)) || undefined,
    { timeoutMs: 30_000, intervalMs: 100 },
  );
  await cluster.killControl('SIGTERM');
  await cluster.startControl();
  // At once: a's agent has not reported to this control service yet.
  const started = Date.now();
  const r = await runOn(b, v, 'cat /data/f');
  const tookMs = Date.now() - started;
  expect({ code: r.code, out: r.stdout.trim(), stderr: r.stderr }).toEqual({ code: 0, out: 'one', stderr: '' });
  expect(tookMs).toBeLessThan(BOUND_MS);
});
