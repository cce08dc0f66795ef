/**
 * A move away and straight back (session 9): the old holder's agent unmounts for the move, but its report of
 * that may come after the move back (intermediate states are debounced; the new holder's "mounted" can even
 * come first), so the snapshot shows the dataset mounted here, under this node's lease and as its primary,
 * while the kernel shows the path unmounted. A Mount answered then hands Docker a bare directory: the
 * container's writes go under the agent's next mount, lost to the volume. The kernel's table, where it can
 * tell, vetoes such a snapshot. Real control service (in-process), fake agents, a fake mount-event source.
 */
import type { FlockerClient } from '@flocker/api';
import type { FlockerVolumeBackend } from './FlockerVolumeBackend';
import { MountTable, SOURCE_READY_MS } from './MountTable';
import { BackendTestBed, HOST_A, HOST_B, NODE_A, NODE_B, silentLogger } from './testing';
import { FakeMountSource, followedFakeTable, settledWithin } from './testing/FakeMountSource';

describe('a Mount after a move away and back does not take the old holder’s stale "mounted"', () => {
  let bed: BackendTestBed;
  let client: FlockerClient;
  let src: FakeMountSource;
  let table: MountTable;

  beforeEach(async () => {
    bed = await BackendTestBed.start('plugin-stale-mounted-', [HOST_A, HOST_B]);
    client = bed.client;
    ({ src, table } = followedFakeTable(HOST_A.mountRoot));
  });

  afterEach(async () => {
    for (const a of bed.agents) a.paused = false;
    table.close();
    await bed.close();
  });

  const backend = (): Promise<FlockerVolumeBackend> =>
    bed.backend(NODE_A, { mountTimeoutMs: 3_000, mountTable: { table, hostMountRoot: HOST_A.mountRoot } });

  const until = async (b: FlockerVolumeBackend, ok: (primary: string | undefined, mountedOn: string[]) => boolean) => {
    for (;;) {
      const s = b.watcher.followed();
      const d = s?.datasets.find((x) => x.metadata.name === 'v');
      const on = (s?.nodes ?? [])
        .filter((n) => n.manifestations.some((m) => m.dataset_id === d?.dataset_id && m.status === 'mounted'))
        .map((n) => n.uuid);
      if (d !== undefined && ok(d.primary, on)) return d.dataset_id;
      await new Promise((r) => setTimeout(r, 10));
    }
  };

  /**
   * The volume mounted on A (kernel and report), moved to B: B reports it mounted, A's agent unmounts it
   * (the kernel shows it) but its report is held back, so the cluster shows it mounted on both.
   */
  const movedAwayUnreported = async (b: FlockerVolumeBackend, markMounted = true): Promise<string> => {
    const d = await client.createDataset({ primary: NODE_A, metadata: { name: 'v' } });
    const at = `${HOST_A.mountRoot}/${d.dataset_id}`;
    await until(b, (p, on) => p === NODE_A && on.includes(NODE_A));
    if (markMounted) src.emit('mount', at);
    bed.agents[0]!.paused = true;
    await client.updateDataset(d.dataset_id, { primary: NODE_B });
    await until(b, (p, on) => p === NODE_B && on.includes(NODE_A) && on.includes(NODE_B));
    if (markMounted) src.emit('umount', at);
    return at;
  };

  it('a Mount that moves it back waits for the kernel’s mount, not the stale report', async () => {
    const b = await backend();
    const at = await movedAwayUnreported(b);
    const mount = b.mount({ Name: 'v', ID: 'm1' });
    // Before the fix: answered at once with `at`, which is not mounted.
    expect(await settledWithin(mount, 400)).toBe('pending');
    // A's agent mounts it again; its report is the same as the stale one (no new snapshot): the re-check finds it.
    src.emit('mount', at);
    expect(await settledWithin(mount, 1_000)).toEqual({ Mountpoint: at });
  });

  it('a Mount after someone else moved it back (the followed snapshot shows it here) waits too', async () => {
    const b = await backend();
    const at = await movedAwayUnreported(b);
    const id = await until(b, (p) => p === NODE_B);
    await client.updateDataset(id, { primary: NODE_A });
    await until(b, (p, on) => p === NODE_A && on.includes(NODE_A));
    const mount = b.mount({ Name: 'v', ID: 'm1' });
    // Before the fix: answered at the grant of the lease on the followed configuration.
    expect(await settledWithin(mount, 400)).toBe('pending');
    bed.agents[0]!.paused = false;
    src.emit('mount', at);
    await bed.agents[0]!.poke();
    expect(await settledWithin(mount, 1_000)).toEqual({ Mountpoint: at });
  });

  it('where the kernel cannot tell (no mount under the root ever seen here), the snapshot decides as before', async () => {
    const b = await backend();
    const at = await movedAwayUnreported(b, false);
    const mount = b.mount({ Name: 'v', ID: 'm1' });
    expect(await settledWithin(mount, 1_000)).toEqual({ Mountpoint: at });
  });
});

describe('MountTable.isMounted: what the kernel can tell of a dataset’s mount path', () => {
  it('cannot tell until a mount under the root was seen from here; then tells mounted from not', () => {
    const { src, table } = followedFakeTable(HOST_A.mountRoot);
    // The agent's mounts may not propagate to this namespace: an absent one proves nothing yet.
    expect(table.isMounted('d1')).toBeUndefined();
    src.emit('mount', `${HOST_A.mountRoot}/d2`);
    expect(table.isMounted('d1')).toBe(false);
    expect(table.isMounted('d2')).toBe(true);
    src.emit('umount', `${HOST_A.mountRoot}/d2`);
    expect(table.isMounted('d2')).toBe(false);
    // A mount elsewhere says nothing of this namespace seeing the agent's.
    const other = new MountTable(HOST_A.mountRoot, silentLogger, new FakeMountSource(), () => SOURCE_READY_MS);
    expect(other.isMounted('d1')).toBeUndefined();
    for (const bad of ['', '../x', 'a/b', '.hidden']) expect(table.isMounted(bad)).toBeUndefined();
    table.close();
  });

  it('a mount found by a read of the table counts too; a table that cannot be read tells nothing', () => {
    const src = new FakeMountSource();
    const table = new MountTable(HOST_A.mountRoot, silentLogger, src);
    src.mounted.add(`${HOST_A.mountRoot}/d1`);
    expect(table.isMounted('d1')).toBe(true);
    expect(table.isMounted('d3')).toBe(false);
    src.isMountPoint = () => {
      throw new Error('EACCES');
    };
    expect(table.isMounted('d1')).toBeUndefined();
    table.close();
  });
});
