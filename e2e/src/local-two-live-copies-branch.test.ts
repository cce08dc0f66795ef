/**
 * Review RT (session 15; failed 3 of 3 before T3's fix of compareCopies): two live copies ordered by
 * lineage (6551067, 86290f6, fd5b05c), a history
 * that makes both "branched" relations hold. The dataset made on B, moved B -> A (A's copy promoted
 * from B's final snapshot P; B keeps P), then A -> B with A's agent killed (kill -9) between B's
 * promote and its own retire: B's copy is promoted from A's final snapshot F and B's users write;
 * A holds P and F, B holds P and F. The primary moved back to A while A is down; the dataset carries
 * accept-replica-loss (an opt-in a user set for a failover some time ago). Before A's agent is back,
 * something reads a file of A's (unchanged) copy through the pool path (a backup tool, a find):
 * relatime updates its atime, which bumps the subvolume's generation, so A's lineage no longer says
 * "unchanged since F" (sameAs null). A's copy holds nothing B's lacks (B's is made from F).
 * Expected: A never mounts a copy without B's acknowledged writes (it retires its own for B's, or
 * refuses). Two real agents on btrfs loop pools, a control service over mutual TLS. Needs root.
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { btrfsPool, digests, dd, MiB, useDoubleFaultAgents } from './localTwoAgents';

jest.setTimeout(180_000);

describe('review RT: two live copies whose lineages are both branched (btrfs)', () => {
  const agents = useDoubleFaultAgents('flocker-e2e-rt-branch-', 'btrfs', btrfsPool);

  it("A's copy, unchanged since F but its lineage not saying so, is never mounted without B's writes", async () => {
    const bed = agents();
    const [a, b] = bed.ab;
    const { admin } = bed;
    const { dataset_id: id } = await admin.createDataset({
      primary: b.uuid,
      maximum_size: 256 * MiB,
      metadata: { 'clusterhq:flocker:accept-replica-loss': 'true' },
    });
    const pathB0 = await bed.waitMounted('mounted on B', id, b);
    dd(path.join(pathB0, 'first'), 4);
    // B -> A: A's copy promoted from B's final snapshot P.
    await admin.updateDataset(id, { primary: a.uuid });
    const pathA = await bed.waitMounted('moved to A and mounted there', id, a, 60_000);
    await bed.waitFor('B to let go of its copy', () => (!b.pool.live(id) ? true : undefined), 30_000, 100);
    dd(path.join(pathA, 'on-a'), 4);
    // A -> B: A's agent stops itself after B's promote; killed there.
    const pathB = await bed.moveKillingSourceAfterPromote(id);
    expect(a.pool.live(id)).toBe(true);
    // B's users write (acknowledged).
    dd(path.join(pathB, 'acknowledged-on-b'), 8);
    const expected = digests(pathB);
    await admin.updateDataset(id, { primary: a.uuid });
    await bed.waitRefusal("B's refusal", b, id);
    // A read of A's copy through its pool path (no write): relatime updates an atime.
    execFileSync('cat', [path.join(a.pool.pool, 'flocker', 'datasets', id, 'on-a')], { stdio: 'ignore' });
    bed.start(a);
    // A either gets B's copy (mounted with every byte of it) or refuses; never its own older copy mounted.
    // (Mounted on A's host: whatever the dataset state shows while two nodes report a copy.)
    const outcome = await bed.decision(a, id, 90_000);
    console.log(
      `A's decision: ${JSON.stringify(outcome)}\n${a.log
        .split('\n')
        .filter((l) => l.includes('lineages'))
        .join('\n')}`,
    );
    if (outcome.mounted !== undefined) expect(digests(outcome.mounted)).toEqual(expected);
    // The order is not provable (A's copy may have changed since F; B's is written): A refuses,
    // naming B, and B's copy keeps every byte, live there.
    expect(outcome.refused).toContain(b.uuid);
    expect(b.pool.live(id)).toBe(true);
    expect(digests(pathB)).toEqual(expected);
  });
});
