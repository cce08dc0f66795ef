/**
 * Review T4 (session 19): one control replica cut off from etcd (its etcd connections blackholed by a
 * TCP proxy: packets go nowhere, nothing is refused), while agents still reach it. The agents name
 * every replica (docs/production.md §4), and two healthy replicas remain. A node whose first replica
 * is the cut-off one must keep working through the others: no fence, no unmount, its writer keeps
 * writing. (What a user asking the cut-off replica sees is recorded in result.txt.)
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { useEtcdBed } from './testing/etcdBed';
import { fenceLines, startCutOffBed, watchWhileCut } from './testing/replicaCutOff';

jest.setTimeout(240_000);

const PARTITION_MS = Number(process.env.T4_PARTITION_MS ?? 25_000);

const theBed = useEtcdBed('flk-t4-part-');

it('a replica cut off from etcd (agents still reach it): a node naming it first keeps working through the other two, no fence, no unmount', async () => {
  const bed = theBed();
  const { dir } = bed;
  const t = await startCutOffBed(bed, process.env.T4_NODE_TIMEOUT ?? '10', (hostPort) => ({
    a: [hostPort[0]!, hostPort[1]!, hostPort[2]!],
    b: [hostPort[1]!, hostPort[2]!, hostPort[0]!],
  }));
  const { ack, writer } = t;
  const agentLogBefore = readFileSync(join(dir, 'agent-a.log'), 'utf8').length;
  for (const h of t.holes) h.block();
  const cutAt = Date.now();
  const { unmounted, shownByCutOff } = await watchWhileCut(bed, t, cutAt, PARTITION_MS);
  const ackedDuring = Number(readFileSync(ack, 'utf8'));
  for (const h of t.holes) h.heal();
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
