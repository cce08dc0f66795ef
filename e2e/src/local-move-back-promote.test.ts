/**
 * A move back landing after the promote was asked for but before the target saw it (session 16; s15's
 * open follow-up, RT2 note 5): with Docker, a container started on the old node again during a move
 * (its Mount moves the volume back). The target, no longer the primary, refuses the promote. The
 * mover used to retry that refusal for about a minute (PEER_REFUSED x20) while the old node's copy
 * stayed unmounted and the container's Mount waited. Now the move ends 'taken back' at once: the
 * target answered (none of the mover's promotes may still run there) and holds no live copy.
 * Deterministic: A's agent stops itself (SIGSTOP) right before its first promote
 * (FLOCKER_TEST_STOP_BEFORE_PROMOTE); the primary is moved back to A; B sees it; A continues. Two real
 * agents on btrfs loop pools, then on ZFS file pools (the kernel's zfs, else zfs-fuse; skipped with the
 * reason where neither runs), a control service over mutual TLS. Needs root.
 */
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { digests, dd, localEngineCases, MiB, processState, TwoLocalAgents } from './localTwoAgents';

jest.setTimeout(180_000);

const ENGINES = localEngineCases();

describe.each(ENGINES)(
  'a move back after the promote was asked for, the target seeing it first ($engine)',
  ({ engine, skip, makePool }) => {
    if (skip !== undefined) {
      it('cannot run on this machine (the reason is printed)', () => {
        console.log(`move back before the promote e2e (${engine}) skipped: ${skip}`);
      });
      return;
    }
    let bed: TwoLocalAgents | undefined;
    beforeAll(async () => {
      bed = new TwoLocalAgents('flocker-e2e-move-back-');
      await bed.startControl();
      await bed.addNodes(engine, makePool);
      const [a, b] = bed.ab;
      bed.start(a, { FLOCKER_TEST_STOP_BEFORE_PROMOTE: '1' });
      bed.start(b);
      await bed.waitBothReport();
    });
    afterAll(() => bed?.close());

    it("the target refuses the promote; A mounts its copy again within seconds, nothing live on B, A's data whole", async () => {
      if (bed === undefined) throw new Error('the agents are not set up');
      const t = bed;
      const [a, b] = t.ab;
      const { dataset_id: id } = await t.admin.createDataset({ primary: a.uuid, maximum_size: 256 * MiB });
      const pathA = await t.waitMounted('mounted on A', id, a);
      dd(path.join(pathA, 'data'), 16);
      const expected = digests(pathA);

      await t.admin.updateDataset(id, { primary: b.uuid });
      // A's agent stopped itself right before asking B to promote (phase 2 done: B holds the final snapshot).
      await t.waitFor(
        "A's agent stopped before the promote",
        () => (processState(a.pid ?? 0) === 'T' ? true : undefined),
        60_000,
        50,
      );
      // The move back (a container's Mount on A), seen by B's agent (it follows the service's watch) while A's is stopped.
      await t.admin.updateDataset(id, { primary: a.uuid });
      await sleep(1_500);
      const resumed = Date.now();
      process.kill(a.pid ?? 0, 'SIGCONT');

      const again = await t.waitMounted('mounted on A again', id, a, 60_000);
      const tookMs = Date.now() - resumed;
      console.log(`mounted on A again ${tookMs} ms after A's agent continued`);
      expect(tookMs).toBeLessThan(15_000);
      expect(a.log).toMatch(/a move was taken back/);
      expect(b.pool.live(id)).toBe(false);
      expect(digests(again)).toEqual(expected);
      await t.waitNoErrors(id);
    });
  },
);
