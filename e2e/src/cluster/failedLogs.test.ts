/** The logs of a failed test's cluster are kept (failedLogs): what is copied, and only after a failure. No root. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FAILURES_GLOBAL, failuresSoFar, keepLogsOfFailure, logFiles, type FailureRecord } from './failedLogs';
import { clusterLayout } from './layout';

let base: string;
let kept: string | undefined;

beforeEach(() => {
  base = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-failed-logs-test-'));
  const write = (rel: string, text: string): void => {
    fs.mkdirSync(path.dirname(path.join(base, rel)), { recursive: true });
    fs.writeFileSync(path.join(base, rel), text);
  };
  write('cluster.json', '{}');
  write('control/control.log', 'control\n');
  write('control/data/node_identities.json', '{}');
  write('hosts/a/log/agent.log', 'agent\n');
  write('hosts/a/log/plugin.log.1', 'plugin\n');
  write('hosts/a/agent.yml', 'a: 1\n');
  write('hosts/a/docker-data/x.json', '{}');
  write('hosts/a/etc-docker/key.json', '{}');
  write('hosts/a/mnt/v/data.log', 'user data\n');
  write('pool/vol.json', '{}');
  fs.writeFileSync(path.join(base, 'control', 'data', 'big.json'), Buffer.alloc(2 << 20));
});

afterEach(() => {
  fs.rmSync(base, { recursive: true, force: true });
  if (kept !== undefined) fs.rmSync(kept, { recursive: true, force: true });
  kept = undefined;
});

function record(): FailureRecord {
  return (globalThis as Record<string, unknown>)[FAILURES_GLOBAL] as FailureRecord;
}

it("runs under the e2e environment, which records this file's failures", () => {
  expect(record()).toEqual({ file: 'failedLogs', failures: expect.any(Array) as unknown });
});

it('takes logs and small state files, never pools, mounts, Docker data or big files', () => {
  expect(
    logFiles(base)
      .map((f) => path.relative(base, f))
      .sort(),
  ).toEqual([
    'cluster.json',
    'control/control.log',
    'control/data/node_identities.json',
    'hosts/a/agent.yml',
    'hosts/a/log/agent.log',
    'hosts/a/log/plugin.log.1',
  ]);
});

it('keeps nothing while no test failed since the mark, and the logs once one did', () => {
  const layout = clusterLayout(base, 0, 1);
  const mark = failuresSoFar();
  expect(keepLogsOfFailure(layout, mark)).toBeUndefined();
  record().failures.push('a stand-in failure');
  try {
    kept = keepLogsOfFailure(layout, mark, new Date('2026-12-07T10:00:00.000Z'));
  } finally {
    record().failures.pop();
  }
  expect(kept).toBe(path.join(os.tmpdir(), 'flocker-e2e-failed-failedLogs-2026-12-07T10-00-00-000Z'));
  const dir = kept ?? '';
  expect(fs.readFileSync(path.join(dir, 'hosts/a/log/agent.log'), 'utf8')).toBe('agent\n');
  expect(fs.readFileSync(path.join(dir, 'control/control.log'), 'utf8')).toBe('control\n');
  expect(fs.readFileSync(path.join(dir, 'FAILED'), 'utf8')).toBe('a stand-in failure\n');
  expect(fs.existsSync(path.join(dir, 'hosts/a/mnt'))).toBe(false);
});
