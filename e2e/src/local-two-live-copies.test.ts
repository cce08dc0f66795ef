/**
 * Two live copies of a local dataset after a double fault (issue 24; review RL, session 14): a move
 * A -> B whose source agent is killed (kill -9) between B's promote and its own retire, B's users
 * write, the primary is moved back to A before A's agent restarts. Before: A mounted its older copy
 * and B retired its newer one (B's acknowledged writes lost). Now: while A is down B refuses
 * (TWO_LIVE_COPIES: the order of the copies is not known) and keeps its copy; A, back, finds its copy
 * older than B's (B's is made from A's final snapshot, A's unchanged since), retires it and B pushes
 * its copy to A. Two real agents on btrfs loop pools, then on ZFS file pools (the kernel's zfs, else
 * zfs-fuse; skipped with the reason where neither runs), a control service over mutual TLS. Needs root.
 */
import * as path from 'node:path';
import { digests, dd, localEngineCases, MiB, useDoubleFaultAgents } from './localTwoAgents';

jest.setTimeout(180_000);

const ENGINES = localEngineCases();

describe.each(ENGINES)(
  'two live copies after a source killed between the promote and its retire ($engine)',
  ({ engine, skip, makePool }) => {
    if (skip !== undefined) {
      it('cannot run on this machine (the reason is printed)', () => {
        console.log(`two live copies e2e (${engine}) skipped: ${skip}`);
      });
      return;
    }
    const agents = useDoubleFaultAgents('flocker-e2e-two-live-', engine, makePool);

    it("B's writes after the promote end up live on A, every byte; no copy lost; both agents converge", async () => {
      const bed = agents();
      const [a, b] = bed.ab;
      const { admin } = bed;
      const { dataset_id: id } = await admin.createDataset({ primary: a.uuid, maximum_size: 256 * MiB });
      const pathA = await bed.waitMounted('mounted on A', id, a);
      dd(path.join(pathA, 'before'), 32);

      // The move to B: A's agent stops itself once B has promoted (and mounted), before retiring its own copy; killed there.
      const pathB = await bed.moveKillingSourceAfterPromote(id);
      // The double fault's state: A's older live copy is still there, unmounted.
      expect(a.pool.live(id)).toBe(true);

      // B's users write (acknowledged: fsync'd): a new file, and the old one changed.
      dd(path.join(pathB, 'after'), 16);
      dd(path.join(pathB, 'before'), 1, ['conv=notrunc,fsync', 'seek=5']);
      const expected = digests(pathB);
      expect(Object.keys(expected)).toEqual(['after', 'before']);

      // The primary moved back to A while A's agent is down: B cannot tell which copy is newer (A does
      // not answer), so it keeps its copy, refusing with TWO_LIVE_COPIES naming A.
      await admin.updateDataset(id, { primary: a.uuid });
      const refusal = await bed.waitRefusal("B's refusal", b, id);
      expect(refusal).toMatchObject({ code: 'TWO_LIVE_COPIES' });
      expect(refusal.message).toContain(a.uuid);
      expect(b.pool.live(id)).toBe(true);
      expect(digests(pathB)).toEqual(expected);

      // A's agent back (no hook): its copy is the older one (B's is made from its final snapshot), so it
      // retires it and B pushes its copy to A (incremental from that snapshot).
      bed.start(a);
      const back = await bed.waitMounted("moved back to A with B's writes", id, a, 90_000);
      expect(digests(back)).toEqual(expected);
      await bed.waitFor('B to let go of its copy', () => (!b.pool.live(id) ? true : undefined), 30_000, 100);
      // Converged: no error of the dataset on either node; A retired its older copy (never mounted it: the data is B's).
      await bed.waitNoErrors(id);
      expect(a.log).toMatch(/"kind":"retire".*"message":"local action"/);
      expect(digests(back)).toEqual(expected);

      await admin.deleteDataset(id);
      await bed.waitNothingLeft(id);
    });

    it("the source killed after the promote and restarted, the primary still B: its older copy retired (made from nothing newer), B's writes untouched", async () => {
      const bed = agents();
      const [a, b] = bed.ab;
      const { admin } = bed;
      // A's agent again with the hook (the first case restarted it without).
      if (a.pid !== undefined) process.kill(-a.pid, 'SIGKILL');
      bed.start(a, { FLOCKER_TEST_STOP_AFTER_PROMOTE: '1' });
      const { dataset_id: id } = await admin.createDataset({ primary: a.uuid, maximum_size: 256 * MiB });
      const pathA = await bed.waitMounted('mounted on A', id, a);
      dd(path.join(pathA, 'before'), 16);
      const pathB = await bed.moveKillingSourceAfterPromote(id);
      expect(a.pool.live(id)).toBe(true);
      dd(path.join(pathB, 'after'), 8);
      const expected = digests(pathB);
      // A back: B's copy is made from A's final snapshot, A's unchanged since: A's is the older one.
      bed.start(a);
      await bed.waitFor('A to retire its older copy', () => (!a.pool.live(id) ? true : undefined), 60_000, 100);
      expect(a.log).toMatch(/"kind":"retire".*"message":"local action"/);
      expect(await bed.mountedAt(id, b)).toBe(pathB);
      expect(digests(pathB)).toEqual(expected);
      await bed.waitNoErrors(id);
      await admin.deleteDataset(id);
      await bed.waitNothingLeft(id);
    });
  },
);
