/**
 * One dataset agent's SelfFencing on a manual clock, cut off from the control service (its reports never answered),
 * with one mount and one victim container: the bed of the recovered-fence tests (recoveredAge, review-r2-fenceClock).
 */
import type { ClusterSnapshot } from '@flocker/api';
import type { ManualClock } from '@flocker/runtime/testing';
import winston from 'winston';
import { fenceReportFile } from '../fenceReportFile';
import type { HostMount } from '../HostOps';
import { SelfFencing } from '../SelfFencing';
import { nodeState } from './fakes';

export const FENCE_ME = '11111111-1111-4111-8111-111111111111';
export const FENCE_DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
export const FENCE_T_MS = 3000; // bound 1.5 s

export const fenceSnapshot = (): ClusterSnapshot => ({
  generation: '1',
  configuration_tag: 't1',
  datasets: [],
  leases: [],
  nodes: [nodeState(FENCE_ME, { host: 'a', instance_id: 'i-me' })],
  node_timeout_seconds: FENCE_T_MS / 1000,
});

/** The agent keeping its fence reports in `dir`; `contact()` is a snapshot seen and a report answered, then a look. */
export function fencingAgent<C extends ManualClock>(dir: string, clock: C) {
  const quiet = winston.createLogger({ silent: true });
  const log: string[] = [];
  let mounts: HostMount[] = [{ device: '/dev/loop1', mountPoint: `/flocker/${FENCE_DS}`, majorMinor: '7:1' }];
  const fencing = new SelfFencing(
    {
      nodeUuid: FENCE_ME,
      clock,
      logger: quiet,
      mountRoot: '/flocker/',
      resyncIntervalMs: 10_000,
      lastNodeTimeoutMs: FENCE_T_MS,
      fenceReports: fenceReportFile(dir, quiet),
      hostOps: {
        listMounts: async () => mounts,
        unmount: async (path) => {
          mounts = mounts.filter((m) => m.mountPoint !== path);
        },
      },
      containers: { stopContainersUsing: async () => ['db'] },
    },
    {
      stopTargets: (paths) => ({ paths, volumes: [] }),
      sendReportNow: () => new Promise(() => undefined), // cut off: never answered
      requestReport: () => log.push('report'),
      heartbeat: () => undefined,
      configurationTag: () => 't1',
      refetch: () => undefined,
      fencingStarted: () => undefined,
      wake: () => undefined,
    },
  );
  const contact = (): void => {
    fencing.snapshotSeen(fenceSnapshot(), clock.now());
    fencing.reportAnswered(
      { generation: '1', configuration_tag: 't1', node_timeout_seconds: FENCE_T_MS / 1000 },
      clock.now(),
    );
    fencing.evaluate();
  };
  return { clock, fencing, log, contact };
}
