/**
 * Review T3 finding 2: a volume whose file system went read-only (its loopback pool full: the loop device failed
 * writes, ext4 aborted its journal) was reported "mounted" with no error, and the agent logged nothing.
 */
import { ManualClock } from '@flocker/runtime/testing';
import { DatasetAgent } from './DatasetAgent';
import { TEST_NODE, testAgentOptions } from './testing/agentOptions';
import { FakeControl, FakeDriver, FakeHost } from './testing/fakes';

const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const MiB = 1024 * 1024;

describe('DatasetAgent: a mounted volume whose file system went read-only', () => {
  it("is the dataset's error (what happened, what to do) until it is mounted healthy again; the agent logs it", async () => {
    const host = new FakeHost();
    const clock = new ManualClock();
    const control = new FakeControl(clock);
    const opts = testAgentOptions({ driver: new FakeDriver(), hostOps: host, control, clock });
    const warn = jest.spyOn(opts.logger, 'warn');
    const agent = new DatasetAgent(opts);
    const eventually = (check: () => boolean, ms = 5000): Promise<number> => clock.advanceUntil(check, ms, 5);
    agent.start();
    control.setDatasets([{ dataset_id: DS, primary: TEST_NODE, maximum_size: 64 * MiB, metadata: {}, deleted: false }]);
    await eventually(() => control.last()?.manifestations.some((m) => m.status === 'mounted') === true);
    expect(control.last()!.errors).toEqual([]);

    // EXT4-fs (loopN): Remounting filesystem read-only — mountinfo: "… rw,relatime - ext4 /dev/loopN rw,emergency_ro"
    host.mounts = host.mounts.map((m) => ({ ...m, options: 'rw,relatime', superOptions: 'rw,emergency_ro' }));
    await eventually(() => control.last()?.errors.length === 1);
    expect(control.last()!.errors[0]).toMatchObject({
      dataset_id: DS,
      action: 'observe',
      code: 'FILESYSTEM_READ_ONLY',
      message: expect.stringMatching(/went read-only after a write error.*Free space there.*umount \/flocker\//),
    });
    expect(control.last()!.manifestations[0]).toMatchObject({ status: 'mounted' });
    // Logged once, not at every look.
    await clock.advance(2000);
    const said = warn.mock.calls.map((c): unknown => c[0]);
    expect(said.filter((m) => typeof m === 'string' && m.includes('read-only'))).toHaveLength(1);

    // Unmounted and mounted again once space is free: healthy, the error goes.
    host.mounts = host.mounts.map((m) => ({ ...m, superOptions: 'rw' }));
    await eventually(() => control.last()?.errors.length === 0);
    await agent.stop();
  });
});
