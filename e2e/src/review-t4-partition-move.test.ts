/**
 * Review T4 (session 19): the two-writers check of a partition. Replica 0 is cut off from etcd
 * (blackholed), node a (naming replica 0 only) is declared dead by the healthy replicas, and its
 * dataset, with a writer still writing on a (no dockerd on a: the fence cannot stop it), is moved
 * to b through a healthy replica. Checked: every write acknowledged on a (fsync returned) is on b,
 * and none is acknowledged on a after b mounted the dataset.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stopProcess, useEtcdBed } from './testing/etcdBed';
import { startCutOffBed } from './testing/replicaCutOff';

jest.setTimeout(240_000);

const theBed = useEtcdBed('flk-t4-part2-');

it('a node cut off with its replica, declared dead, its dataset moved with its writer still writing: no write acknowledged on it after the move, none lost', async () => {
  const bed = theBed();
  const { dir } = bed;
  // a reaches replica 0 only (cut off with it): since 7441b22 an agent naming the healthy replicas too moves to
  // them when replica 0 answers STORE_UNAVAILABLE, and is never declared dead (review-t4-replica-partition).
  const { holes, healthy, uuids, datasetId, onA, ack, writer } = await startCutOffBed(bed, 10, (hostPort) => ({
    a: [hostPort[0]!],
    b: [hostPort[1]!, hostPort[2]!, hostPort[0]!],
  }));
  const mountedAt = (p: string) => bed.mountedAt(p);

  for (const h of holes) h.block();
  const cutAt = Date.now();
  await bed.waitFor(
    'the healthy replicas to declare a dead',
    async () => !(await healthy.listNodes()).some((n) => n.uuid === uuids.get('a')),
    30_000,
  );
  await new Promise((r) => setTimeout(r, 3_000));
  await healthy.updateDataset(datasetId, { primary: uuids.get('b')! });
  const onB = join(dir, 'b', 'mnt', datasetId);
  await bed.waitFor('the dataset mounted on b', () => mountedAt(onB), 60_000);
  const mountedOnBAt = Date.now();
  const ackAtB = Number(readFileSync(ack, 'utf8'));
  await new Promise((r) => setTimeout(r, 3_000));
  const ackLater = Number(readFileSync(ack, 'utf8'));
  const onBLines = new Set(readFileSync(join(onB, 'seq.log'), 'utf8').trim().split('\n').map(Number));
  const missing: number[] = [];
  for (let i = 1; i <= ackLater; i++) if (!onBLines.has(i)) missing.push(i);
  for (const h of holes) h.heal();
  await new Promise((r) => setTimeout(r, 3_000));
  const writerLog = existsSync(join(dir, 'writer.log')) ? readFileSync(join(dir, 'writer.log'), 'utf8') : '';
  writeFileSync(
    join(dir, 'result.txt'),
    JSON.stringify(
      {
        cutToMovedMs: mountedOnBAt - cutAt,
        ackAtB,
        ackLater,
        onBMax: Math.max(...onBLines),
        missing: missing.length,
        writerExit: writer.exitCode,
        writerLog,
        aStillMounted: mountedAt(onA),
      },
      null,
      1,
    ),
  );
  expect({ ackedOnAAfterBMounted: ackLater - ackAtB, missingOnB: missing.slice(0, 10) }).toEqual({
    ackedOnAAfterBMounted: 0,
    missingOnB: [],
  });
  await stopProcess(writer);
  execFileSync('sync');
});
