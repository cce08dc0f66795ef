/**
 * A local move when_released (issue 24) changes a volume's primary while a container on this node still uses it
 * (this node's lease): the agent here unmounts the host's mount at once (the container keeps its own) and copies
 * the data away while it stays in use. A second container here asking Mount then must not be answered from that
 * mount (Docker would bind a bare directory; its writes lost to the volume), although the followed snapshot may still
 * show it mounted here (the agent's report of its unmount not in yet). Seen on real Docker (e2e local-when-released,
 * 1 of 3 runs: the second container got an empty directory). The Mount goes the usual way: it moves the volume back
 * (which cancels the move before its promote) and waits for the agent's mount. Real control service, fake agents.
 */
import type { FlockerClient } from '@flocker/api';
import type { FlockerVolumeBackend } from './FlockerVolumeBackend';
import type { MountTable } from './MountTable';
import { BackendTestBed, HOST_A, HOST_B, NODE_A, NODE_B } from './testing';
import { type FakeMountSource, followedFakeTable, settledWithin } from './testing/FakeMountSource';

describe('a second container here while a local move waits for the release', () => {
  let bed: BackendTestBed;
  let client: FlockerClient;
  let src: FakeMountSource;
  let table: MountTable;

  beforeEach(async () => {
    bed = await BackendTestBed.start('plugin-when-released-', [HOST_A, HOST_B]);
    client = bed.client;
    ({ src, table } = followedFakeTable(HOST_A.mountRoot));
  });

  afterEach(async () => {
    for (const a of bed.agents) a.paused = false;
    table.close();
    await bed.close();
  });

  const followed = async (b: FlockerVolumeBackend, ok: (primary: string | undefined, aMounted: boolean) => boolean) => {
    for (;;) {
      const s = b.watcher.current();
      const d = s?.datasets.find((x) => x.metadata.name === 'v');
      const aMounted =
        s?.nodes
          .find((n) => n.uuid === NODE_A)
          ?.manifestations.some((m) => m.dataset_id === d?.dataset_id && m.status === 'mounted') === true;
      if (d !== undefined && ok(d.primary, aMounted)) return;
      await new Promise((r) => setTimeout(r, 10));
    }
  };

  it('is not answered from the mount the agent let go of: the volume is moved back and the Mount waits for it', async () => {
    const b = await bed.backend(NODE_A, {
      mountTimeoutMs: 3_000,
      mountTable: { table, hostMountRoot: HOST_A.mountRoot },
    });
    const d = await client.createDataset({ primary: NODE_A, metadata: { name: 'v' } });
    const at = `${HOST_A.mountRoot}/${d.dataset_id}`;
    src.emit('mount', at);
    expect(await b.mount({ Name: 'v', ID: 'c1' })).toEqual({ Mountpoint: at });
    // A turns out to be a local node (its agent, stuck from here on, reports the volume still mounted).
    await bed.reportStuckLocalMount(HOST_A, d.dataset_id, at);
    // The move while c1 runs: A's agent unmounts the host's mount; its report of that is not in yet.
    await client.updateDataset(d.dataset_id, { primary: NODE_B, when_released: true });
    src.emit('umount', at);
    await followed(b, (p, aMounted) => p === NODE_B && aMounted);
    const second = b.mount({ Name: 'v', ID: 'c2' });
    // Before the fix: answered at once with `at`, which is no longer mounted.
    expect(await settledWithin(second, 400)).toBe('pending');
    expect((await client.getDataset(d.dataset_id)).primary).toBe(NODE_A);
    // A's agent mounts it again (the move cancelled): the Mount is answered.
    src.emit('mount', at);
    expect(await settledWithin(second, 1_000)).toEqual({ Mountpoint: at });
  });

  it('docker volume inspect during the pending move: node is where the data is (as the CLI says), moving_to the target', async () => {
    const b = await bed.backend(NODE_A, { mountTable: { table, hostMountRoot: HOST_A.mountRoot } });
    const d = await client.createDataset({ primary: NODE_A, metadata: { name: 'v' } });
    const at = `${HOST_A.mountRoot}/${d.dataset_id}`;
    src.emit('mount', at);
    await b.mount({ Name: 'v', ID: 'c1' });
    await bed.reportStuckLocalMount(HOST_A, d.dataset_id, at);
    // B gets no copy while A's lease holds the move (a local target's copy is promoted only at the takeover).
    for (const agent of bed.agents) agent.paused = true;
    await client.updateDataset(d.dataset_id, { primary: NODE_B, when_released: true });
    await followed(b, (p) => p === NODE_B);
    // Before: node host-b / node_uuid B (the primary) beside state 'mounted on host-a (moving)' and in_use_on host-a.
    expect((await b.get({ Name: 'v' })).Volume.Status).toMatchObject({
      node: 'host-a',
      node_uuid: NODE_A,
      state: 'mounted on host-a (moving)',
      in_use_on: 'host-a',
      moving_to: 'host-b',
      moving_to_uuid: NODE_B,
      when_released: true,
    });
  });
});
