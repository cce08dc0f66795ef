/**
 * Review T4 (session 19): one control replica frozen (SIGSTOP: a VM stall, a long GC pause, a hung
 * host; its TCP connections stay open, nothing answers) for 20 s. Agents name every replica; a node
 * whose first replica is the frozen one must keep working through the other two: no fence, no unmount.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { useEtcdBed } from './testing/etcdBed';
import { fenceLines, startCutOffBed, watchWhileCut } from './testing/replicaCutOff';

jest.setTimeout(240_000);

const PARTITION_MS = Number(process.env.T4_PARTITION_MS ?? 20_000);

const theBed = useEtcdBed('flk-t4-frozen-');

it('a replica frozen (SIGSTOP) for 20 s: a node naming it first keeps working through the other two, no fence, no unmount', async () => {
  const bed = theBed();
  const { dir } = bed;
  const t = await startCutOffBed(bed, process.env.T4_NODE_TIMEOUT ?? '10', (hostPort) => ({
    a: [hostPort[0]!, hostPort[1]!, hostPort[2]!],
    b: [hostPort[1]!, hostPort[2]!, hostPort[0]!],
  }));
  const { ack, writer } = t;
  const agentLogBefore = readFileSync(join(dir, 'agent-a.log'), 'utf8').length;
  t.replicas[0]!.proc!.kill('SIGSTOP');
  const cutAt = Date.now();
  const { unmounted, shownByCutOff } = await watchWhileCut(bed, t, cutAt, PARTITION_MS);
  const ackedDuring = Number(readFileSync(ack, 'utf8'));
  t.replicas[0]!.proc!.kill('SIGCONT');
  await new Promise((r) => setTimeout(r, 5_000));
  const fenced = fenceLines(join(dir, 'agent-a.log'), agentLogBefore);
  writeFileSync(
    join(dir, 'result.txt'),
    JSON.stringify({ unmounted, fenced, writerExit: writer.exitCode, ackedDuring, shownByCutOff }, null, 1),
  );
  expect({ unmounted, fenced, writerAlive: writer.exitCode === null }).toEqual({
    unmounted: [],
    fenced: [],
    writerAlive: true,
  });
  execFileSync('sync');
});
