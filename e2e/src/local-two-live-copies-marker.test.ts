/**
 * Review RT (session 15; failed 2 of 2 before T3's fix, markedElsewhere): the data-node marker (control-api dataNode.ts) where the new primary holds
 * an older live copy. The double fault: A -> B, A's agent killed (kill -9) between B's promote and
 * its own retire, B's users write, the primary moved back to A (the service records B as the data
 * node). Then the control service restarts (node states are kept in memory) while B's agent is
 * stopped (down, slow to come back), and A's agent comes back: A's view shows no other holder of the
 * dataset. The marker is there for exactly this, but the decision reads it only where the primary
 * holds no copy. Expected: A does not mount its older copy while the marked node B is not shown;
 * B's acknowledged writes are never hidden. Two real agents on btrfs loop pools. Needs root.
 */
import * as path from 'node:path';
import { btrfsPool, digests, dd, MiB, useDoubleFaultAgents } from './localTwoAgents';

jest.setTimeout(180_000);

describe('review RT: two live copies, the control service restarted while the newer holder is down (btrfs)', () => {
  const agents = useDoubleFaultAgents('flocker-e2e-rt-marker-', 'btrfs', btrfsPool);

  it('A does not mount its older copy while B, the marked data node, is not shown after a restart', async () => {
    const bed = agents();
    const [a, b] = bed.ab;
    const { dataset_id: id } = await bed.admin.createDataset({ primary: a.uuid, maximum_size: 256 * MiB });
    const pathA = await bed.waitMounted('mounted on A', id, a);
    dd(path.join(pathA, 'before'), 8);
    const pathB = await bed.moveKillingSourceAfterPromote(id);
    dd(path.join(pathB, 'acknowledged-on-b'), 8);
    const expected = digests(pathB);
    await bed.admin.updateDataset(id, { primary: a.uuid });
    console.log(`metadata after the move back: ${JSON.stringify((await bed.admin.getDataset(id)).metadata)}`);
    await bed.waitRefusal("B's refusal", b, id);
    // B's agent stopped (down), the control service restarted on its directory and port: node states forgotten.
    const groupB = b.groups.at(-1) as number;
    process.kill(-groupB, 'SIGSTOP');
    await bed.restartControl();
    bed.start(a);
    const outcome = await bed.decision(a, id, 60_000);
    console.log(`A's decision: ${JSON.stringify(outcome)}`);
    console.log(`A ${a.uuid}, B ${b.uuid}`);
    // A refuses, naming B (the marker's node), its older copy not mounted over B's.
    expect(outcome.mounted).toBeUndefined();
    expect(outcome.refused).toContain(b.uuid);
    expect(b.pool.live(id)).toBe(true);
    expect(digests(pathB)).toEqual(expected);
    process.kill(-groupB, 'SIGCONT');
    // B back and shown: the copies are ordered (B's made from A's final snapshot, A's unchanged
    // since): A retires its older copy, B pushes its own to A, A mounts it with every byte of B's writes.
    const pathA2 = await bed.waitFor(
      "B's copy pushed to A and mounted there",
      async () => {
        const p = await bed.mountedAt(id, a);
        return p !== undefined && !b.pool.live(id) ? p : undefined;
      },
      90_000,
      200,
    );
    expect(digests(pathA2)).toEqual(expected);
    await bed.waitNoErrors(id, 'no error left on either node');
  });
});
