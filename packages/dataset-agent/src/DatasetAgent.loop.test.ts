import type { NodeState } from '@flocker/api';
import { TEST_NODE, testAgentOptions } from './testing/agentOptions';
import { StorageError } from '@flocker/storage-drivers';
import { CREATE_HOLD_MS, DatasetAgent } from './DatasetAgent';
import { countListings, FakeControl, FakeDriver, FakeHost } from './testing/fakes';
import { ManualClock } from '@flocker/runtime/testing';

const ME = TEST_NODE;
const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const MiB = 1024 * 1024;

function setup(
  extra: {
    crash?: () => void;
    crashAfter?: { kind: 'create'; count: number };
    resyncIntervalMs?: number;
    poolChanges?: (onChange: () => void) => () => void;
    progressReportMs?: number;
    concurrency?: number;
  } = {},
) {
  const driver = new FakeDriver();
  const host = new FakeHost();
  const clock = new ManualClock();
  const control = new FakeControl(clock);
  const agent = new DatasetAgent(testAgentOptions({ driver, hostOps: host, control, clock, ...extra }));
  current = clock;
  return { driver, host, control, agent, clock };
}

// Every test runs on manual time: the agent's timers (loop, backoff, progress
// reports, heartbeats) and the fake control service's long-poll hold move only here.
let current: ManualClock;
async function eventually(check: () => boolean, ms = 5000): Promise<void> {
  await current.advanceUntil(check, ms, 5);
}
/** Lets manual time pass. */
const pass = (ms: number): Promise<void> => current.advance(ms);

/** Each call of obj[method] first notes `label` in events, then runs as before. */
function noteCalls<T extends object, K extends keyof T>(events: string[], obj: T, method: K, label: string): void {
  const original = obj[method] as unknown as (...args: unknown[]) => Promise<unknown>;
  obj[method] = (async (...args: unknown[]) => (events.push(label), original.apply(obj, args))) as unknown as T[K];
}

const dataset = { dataset_id: DS, primary: ME, maximum_size: 64 * MiB, metadata: {}, deleted: false };

type Fakes = ReturnType<typeof setup>;
/** The pool shows DS's volume attached to another node ('i-other'). */
function heldElsewhere(driver: Fakes['driver']): void {
  driver.volumes.set('vol-other', { blockdeviceId: 'vol-other', datasetId: DS, size: 64 * MiB, attachedTo: 'i-other' });
}
/** The other node detaches it (it has a filesystem, so ours mounts it without formatting). */
function releasedElsewhere(driver: Fakes['driver'], host: Fakes['host']): void {
  driver.volumes.set('vol-other', { blockdeviceId: 'vol-other', datasetId: DS, size: 64 * MiB, attachedTo: null });
  host.formatted.add('/dev/fake/vol-other');
}

describe('DatasetAgent loop (fake driver, host and control service)', () => {
  it('converges a new dataset to mounted and reports it, then destroys it when deleted', async () => {
    const { driver, host, control, agent } = setup();
    agent.start();
    control.setDatasets([dataset]);
    await eventually(() => control.last()?.manifestations.some((m) => m.status === 'mounted') === true);
    expect(control.last()!.manifestations).toEqual([
      {
        dataset_id: DS,
        blockdevice_id: 'vol-0',
        size: 64 * MiB,
        status: 'mounted',
        device_path: '/dev/fake/vol-0',
        path: `/flocker/${DS}`,
      },
    ]);
    expect(control.last()).toMatchObject({
      uuid: ME,
      era: 'era-1',
      host: '10.0.0.1',
      instance_id: 'i-me',
      backend: 'fake',
      errors: [],
    });
    expect(host.mounts).toHaveLength(1);

    control.setDatasets([{ ...dataset, deleted: true }]);
    await eventually(() => driver.volumes.size === 0 && control.last()?.volumes?.length === 0);
    expect(host.mounts).toHaveLength(0);
    await agent.stop();
  });

  it('retries a failing action with backoff and reports the error until it succeeds', async () => {
    const { host, control, agent } = setup();
    host.failMounts = 3;
    agent.start();
    control.setDatasets([dataset]);
    await eventually(() => (control.last()?.errors ?? []).some((e) => e.attempts >= 2));
    const error = control.last()!.errors[0]!;
    expect(error).toMatchObject({ dataset_id: DS, action: 'mount', code: 'BACKEND_ERROR', message: 'mount: no luck' });
    await eventually(() => control.last()?.manifestations[0]?.status === 'mounted');
    expect(control.last()!.errors).toEqual([]);
    await agent.stop();
  });

  it('backs off instead of spinning when an action succeeds without visible effect', async () => {
    const { host, control, agent } = setup();
    host.mount = async () => {}; // claims success, mounts nothing
    agent.start();
    control.setDatasets([dataset]);
    await eventually(() => (control.last()?.errors ?? []).some((e) => e.code === 'NO_PROGRESS'));
    expect(control.last()!.errors[0]).toMatchObject({ dataset_id: DS, action: 'mount' });
    await agent.stop();
  });

  it('calls the crash hook right after the chosen action', async () => {
    let crashed = 0;
    const { driver, control, agent } = setup({ crash: () => crashed++, crashAfter: { kind: 'create', count: 1 } });
    agent.start();
    control.setDatasets([dataset]);
    await eventually(() => crashed === 1);
    expect(driver.volumes.size).toBe(1);
    await agent.stop();
  });

  it('looks again at once when the pool changes while a dataset waits for another node to let go', async () => {
    let poolChanged: (() => void) | undefined;
    let unsubscribed = false;
    const { driver, host, control, agent } = setup({
      resyncIntervalMs: 60_000,
      poolChanges: (onChange) => {
        poolChanged = onChange;
        return () => (unsubscribed = true);
      },
    });
    // Another node (alive as far as we know) holds the volume.
    heldElsewhere(driver);
    agent.start();
    control.setDatasets([dataset]);
    await eventually(() => (control.last()?.volumes ?? []).some((v) => v.attached_to === 'i-other'));
    await pass(50);
    expect(host.mounts).toHaveLength(0);
    // The other node detaches: only the pool tells us (no control push, no resync for a minute).
    releasedElsewhere(driver, host);
    const reportsBefore = control.reports.length;
    poolChanged!();
    await eventually(() => host.mounts.length === 1, 2000);
    expect(control.reports.length).toBeGreaterThan(reportsBefore);
    await agent.stop();
    expect(unsubscribed).toBe(true);
  });

  it('ignores pool changes when nothing waits for another node', async () => {
    let poolChanged: (() => void) | undefined;
    const { driver, control, agent } = setup({
      resyncIntervalMs: 60_000,
      poolChanges: (onChange) => ((poolChanged = onChange), () => undefined),
    });
    agent.start();
    control.setDatasets([dataset]);
    await eventually(() => control.last()?.manifestations[0]?.status === 'mounted');
    await pass(50);
    const listings = countListings(driver);
    poolChanged!();
    await pass(50);
    expect(listings()).toBe(0);
    await agent.stop();
  });

  it('reports the intermediate states of quick steps only with the result, not after every step', async () => {
    const { control, agent } = setup({ resyncIntervalMs: 60_000, progressReportMs: 10_000 });
    agent.start();
    await eventually(() => control.reports.length > 0); // the first (empty) report
    const before = control.reports.length;
    control.setDatasets([dataset]);
    await eventually(() => control.last()?.manifestations[0]?.status === 'mounted');
    // create, attach, format, mount: one report when the dataset converged.
    const during = control.reports.slice(before);
    expect(during.map((r) => r.manifestations[0]?.status ?? 'none')).toEqual(['mounted']);
    await agent.stop();
  });

  it('still reports an intermediate state when a step takes longer than progressReportMs', async () => {
    const { host, control, agent } = setup({ resyncIntervalMs: 60_000, progressReportMs: 20 });
    let release!: () => void;
    const slow = new Promise<void>((r) => (release = r));
    const format = host.makeFilesystem.bind(host);
    host.makeFilesystem = async (device) => {
      await slow;
      return format(device);
    };
    agent.start();
    control.setDatasets([dataset]);
    // Attached, formatting: the control service hears of the attachment while mkfs runs.
    await eventually(() => control.last()?.manifestations[0]?.status === 'attached');
    release();
    await eventually(() => control.last()?.manifestations[0]?.status === 'mounted');
    await agent.stop();
  });

  it("starts a new dataset's create without a look of its own, and looks no more than each step needs", async () => {
    const { driver, host, control, agent } = setup({ resyncIntervalMs: 60_000 });
    let listings = 0;
    let listingsAtCreate = -1;
    const list = driver.listVolumes.bind(driver);
    driver.listVolumes = async () => (listings++, list());
    const create = driver.createVolume.bind(driver);
    driver.createVolume = async (datasetId, size) => ((listingsAtCreate = listings), create(datasetId, size));
    let probes = 0;
    const probe = host.hasFilesystem.bind(host);
    host.hasFilesystem = async (device) => (probes++, probe(device));
    agent.start();
    await eventually(() => control.reports.length > 0);
    await pass(50);
    listings = 0;
    control.setDatasets([dataset]);
    await eventually(() => control.last()?.manifestations[0]?.status === 'mounted');
    // Only the create action's own re-check (never a second volume): the fast start itself lists
    // nothing, and the turn's full look is held until the create's worker is done (lookHeld).
    expect(listingsAtCreate).toBe(1);
    // Create, attach and format each tell what they changed (stateAfter): one look after the
    // mount, and no other once idle: the change was only the new dataset, which its worker has in hand
    // (configChangeNeedsLook; session 12: no full look after the create).
    await pass(50);
    expect(listings).toBe(2);
    // Created here and never formatted, then formatted by us: never probed.
    expect(probes).toBe(0);
    await agent.stop();
  });

  it('lists the pool before a fast start while no full look has been made yet', async () => {
    const { driver, control, agent } = setup({ resyncIntervalMs: 60_000 });
    // Made by an earlier run of this agent, say: a volume the view has not seen yet.
    const earlier = await driver.createVolume(DS, 64 * MiB);
    control.setDatasets([dataset]);
    let creates = 0;
    const create = driver.createVolume.bind(driver);
    driver.createVolume = async (datasetId, size) => (creates++, create(datasetId, size));
    agent.start();
    await eventually(() => control.last()?.manifestations[0]?.status === 'mounted');
    expect(creates).toBe(0);
    expect(control.last()?.manifestations[0]?.blockdevice_id).toBe(earlier.blockdeviceId);
    await agent.stop();
  });

  it('looks again when a setup step finds its work already done', async () => {
    const { driver, host, control, agent } = setup({ resyncIntervalMs: 60_000 });
    agent.start();
    await eventually(() => control.reports.length > 0);
    // Attach answers "already attached here" (a crashed run did it): no stateAfter, a look decides.
    const attach = driver.attachVolume.bind(driver);
    driver.attachVolume = async (id, instanceId) => {
      await attach(id, instanceId);
      throw new StorageError('ALREADY_ATTACHED', 'attached to this instance');
    };
    control.setDatasets([dataset]);
    await eventually(() => control.last()?.manifestations[0]?.status === 'mounted');
    expect(host.formatted.size).toBe(1);
    await agent.stop();
  });

  it('reports a mount as soon as it is done, before the look that confirms it', async () => {
    const { driver, host, control, agent } = setup({ resyncIntervalMs: 60_000 });
    agent.start();
    await eventually(() => control.reports.length > 0);
    let mounted = false;
    const mount = host.mount.bind(host);
    host.mount = async (device, mountPoint) => {
      await mount(device, mountPoint);
      mounted = true;
    };
    // The status the control service had heard when the look after the mount started.
    let reportedAtLook: string | undefined;
    const list = driver.listVolumes.bind(driver);
    driver.listVolumes = async () => {
      if (mounted && reportedAtLook === undefined) reportedAtLook = control.last()?.manifestations[0]?.status ?? 'none';
      return list();
    };
    control.setDatasets([dataset]);
    await eventually(() => control.last()?.manifestations[0]?.status === 'mounted');
    expect(reportedAtLook).toBe('mounted');
    await agent.stop();
  });

  it('no full look runs beside a fast-started create: it follows once the dataset is mounted and reported', async () => {
    const { driver, host, control, agent } = setup({ resyncIntervalMs: 60_000 });
    agent.start();
    await eventually(() => control.reports.length > 0);
    await pass(50);
    const events: string[] = [];
    // Only the full look lists the snapshots (no dataset here has any configured).
    const listSnapshots = driver.listSnapshots.bind(driver);
    driver.listSnapshots = async () => (
      events.push(`full look (${control.last()?.manifestations[0]?.status ?? 'none'} reported)`),
      listSnapshots()
    );
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const mount = host.mount.bind(host);
    host.mount = async (device, mountPoint) => {
      events.push('mount');
      await gate;
      return mount(device, mountPoint);
    };
    control.setDatasets([dataset]);
    await eventually(() => events.includes('mount'));
    // A change meanwhile (the plugin's lease, say) is looked at after the create too.
    const other = { ...dataset, dataset_id: 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', primary: 'elsewhere' };
    control.setDatasets([dataset, other]);
    await pass(200);
    expect(events).toEqual(['mount']);
    release();
    await eventually(() => events.length > 1);
    await pass(100);
    expect(events).toEqual(['mount', 'full look (mounted reported)']);
    await agent.stop();
  });

  it('a hung create worker holds the full look no longer than CREATE_HOLD_MS', async () => {
    const { driver, host, control, agent } = setup({ resyncIntervalMs: 60_000 });
    agent.start();
    await eventually(() => control.reports.length > 0);
    await pass(50);
    let looks = 0;
    const listSnapshots = driver.listSnapshots.bind(driver);
    driver.listSnapshots = async () => (looks++, listSnapshots());
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let mounting = false;
    const mount = host.mount.bind(host);
    host.mount = async (device, mountPoint) => {
      mounting = true;
      await gate;
      return mount(device, mountPoint);
    };
    control.setDatasets([dataset]);
    await eventually(() => mounting);
    // A change that needs the full look comes while the create hangs (a new dataset of another node's).
    const other = { ...dataset, dataset_id: 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', primary: 'elsewhere' };
    control.setDatasets([dataset, other]);
    await pass(CREATE_HOLD_MS - 300);
    expect(looks).toBe(0);
    await pass(400);
    expect(looks).toBe(1);
    release();
    await eventually(() => control.last()?.manifestations[0]?.status === 'mounted');
    await agent.stop();
  });

  /** An agent with `dataset` mounted here, another live node beside it, and no look pending (the moves' tests). */
  async function mountedHereWithOther() {
    const parts = setup({ resyncIntervalMs: 60_000 });
    parts.agent.start();
    const other = otherNode([]);
    parts.control.setNodes([other]);
    parts.control.setDatasets([dataset]);
    await eventually(() => parts.control.last()?.manifestations[0]?.status === 'mounted');
    await pass(50);
    return { ...parts, other };
  }

  function otherNode(volumes: NonNullable<NodeState['volumes']>): NodeState {
    return {
      uuid: '22222222-2222-4222-8222-222222222222',
      era: 'e',
      host: '10.0.0.2',
      instance_id: 'i-other',
      backend: 'fake',
      manifestations: [],
      volumes,
      errors: [],
      alive: true,
      last_seen: '2020-01-01T00:00:00Z',
    };
  }

  it("takes no look when only another node's report changed and nothing here waits for it", async () => {
    const { driver, control, agent } = setup({ resyncIntervalMs: 60_000 });
    agent.start();
    control.setNodes([otherNode([])]);
    control.setDatasets([dataset]);
    await eventually(() => control.last()?.manifestations[0]?.status === 'mounted');
    await pass(50);
    const listings = countListings(driver);
    control.setNodes([
      otherNode([
        {
          blockdevice_id: 'vol-x',
          dataset_id: 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb',
          size: MiB,
          attached_to: 'i-other',
        },
      ]),
    ]);
    await pass(50);
    expect(listings()).toBe(0);
    await agent.stop();
  });

  it("looks again when another node's report changes while a dataset waits for that node", async () => {
    const { driver, host, control, agent } = setup({ resyncIntervalMs: 60_000 });
    const held = { blockdevice_id: 'vol-other', dataset_id: DS, size: 64 * MiB, attached_to: 'i-other' };
    heldElsewhere(driver);
    agent.start();
    control.setNodes([otherNode([held])]);
    control.setDatasets([dataset]);
    await eventually(() => (control.last()?.volumes ?? []).some((v) => v.attached_to === 'i-other'));
    await pass(50);
    expect(host.mounts).toHaveLength(0);
    // The other node lets go and says so (no pool watch here): that report alone brings us in.
    releasedElsewhere(driver, host);
    control.setNodes([otherNode([{ ...held, attached_to: null }])]);
    await eventually(() => host.mounts.length === 1, 2000);
    await agent.stop();
  });

  it('a move away unmounts and detaches at once, and no full look follows when the move was all that changed', async () => {
    const { driver, host, control, agent, other } = await mountedHereWithOther();
    // Only the full look lists the backend's snapshots (a dataset's own look does when it has some configured).
    const events: string[] = [];
    noteCalls(events, driver, 'listSnapshots', 'full look');
    noteCalls(events, host, 'unmount', 'unmount');
    noteCalls(events, driver, 'detachVolume', 'detach');
    control.setDatasets([{ ...dataset, primary: other.uuid }]);
    await eventually(() => (control.last()?.volumes ?? []).every((v) => v.attached_to === null));
    await pass(50);
    // The release reported, the dataset leaves this node's view (nothing of it here): no look either.
    control.setDatasets([]);
    await pass(100);
    expect(events).toEqual(['unmount', 'detach']);
    await agent.stop();
  });

  it('a deletion of a dataset mounted here unmounts and destroys it at once, and no full look follows (session 12)', async () => {
    const { driver, host, control, agent } = await mountedHereWithOther();
    const events: string[] = [];
    noteCalls(events, driver, 'listSnapshots', 'full look');
    noteCalls(events, host, 'unmount', 'unmount');
    noteCalls(events, driver, 'destroyVolume', 'destroy');
    control.setDatasets([{ ...dataset, deleted: true }]);
    await eventually(() => driver.volumes.size === 0 && control.last()?.volumes?.length === 0);
    await pass(100);
    expect(events).toEqual(['unmount', 'destroy']);
    expect(host.mounts).toHaveLength(0);
    await agent.stop();
  });

  it('a deletion with another change in the same configuration: the deletion at once, one full look after', async () => {
    const { driver, host, control, agent, other } = await mountedHereWithOther();
    const events: string[] = [];
    noteCalls(events, driver, 'listSnapshots', 'full look');
    noteCalls(events, host, 'unmount', 'unmount');
    noteCalls(events, driver, 'destroyVolume', 'destroy');
    const another = { ...dataset, dataset_id: 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', primary: other.uuid };
    control.setDatasets([{ ...dataset, deleted: true }, another]);
    await eventually(() => driver.volumes.size === 0 && control.last()?.volumes?.length === 0);
    await pass(100);
    expect(events).toEqual(['unmount', 'destroy', 'full look']);
    await agent.stop();
  });

  it('a move away with another change in the same configuration: one full look follows the move', async () => {
    const { driver, control, agent, other } = await mountedHereWithOther();
    const events: string[] = [];
    noteCalls(events, driver, 'listSnapshots', 'full look');
    noteCalls(events, driver, 'detachVolume', 'detach');
    const elsewhere = { ...dataset, dataset_id: 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', primary: other.uuid };
    control.setDatasets([{ ...dataset, primary: other.uuid }, elsewhere]);
    await eventually(() => events.includes('full look'));
    expect(events).toEqual(['detach', 'full look']);
    await agent.stop();
  });

  it('the new primary waits, with no look, while its view shows the volume free but its holder still reports it', async () => {
    const { driver, host, control, agent } = setup({ resyncIntervalMs: 60_000 });
    // The volume was this node's (its view: attached to no one, as it left it); the other node mounted it since.
    driver.volumes.set('vol-other', { blockdeviceId: 'vol-other', datasetId: DS, size: 64 * MiB, attachedTo: null });
    host.formatted.add('/dev/fake/vol-other');
    const holder = (mounted: boolean): NodeState => ({
      ...otherNode([]),
      manifestations: mounted
        ? [{ dataset_id: DS, blockdevice_id: 'vol-other', size: 64 * MiB, status: 'mounted' }]
        : [],
    });
    agent.start();
    control.setNodes([holder(true)]);
    control.setDatasets([{ ...dataset, primary: holder(true).uuid }]);
    await eventually(() => (control.last()?.volumes ?? []).length === 1);
    await pass(50);
    driver.volumes.set('vol-other', {
      blockdeviceId: 'vol-other',
      datasetId: DS,
      size: 64 * MiB,
      attachedTo: 'i-other',
    });
    const listings = countListings(driver);
    control.setDatasets([dataset]);
    await pass(100);
    expect(listings()).toBe(0);
    // The holder lets go and says so: that report starts the move here.
    driver.volumes.set('vol-other', { blockdeviceId: 'vol-other', datasetId: DS, size: 64 * MiB, attachedTo: null });
    control.setNodes([holder(false)]);
    await eventually(() => control.last()?.manifestations[0]?.status === 'mounted', 2000);
    expect(host.mounts).toHaveLength(1);
    await agent.stop();
  });

  it("a move away's unmount is decided on the view, with no look before it; the look after it lists the pool", async () => {
    const { driver, host, control, agent, other } = await mountedHereWithOther();
    const events: string[] = [];
    noteCalls(events, driver, 'listVolumes', 'listing');
    // The unmount action itself reads the mounts (before and after): a look reads them too.
    noteCalls(events, host, 'listMounts', 'mounts');
    noteCalls(events, host, 'unmount', 'unmount');
    noteCalls(events, driver, 'detachVolume', 'detach');
    control.setDatasets([{ ...dataset, primary: other.uuid }]);
    await eventually(() => (control.last()?.volumes ?? []).every((v) => v.attached_to === null));
    await pass(50);
    const beforeDetach = events.slice(0, events.indexOf('detach'));
    // The unmount action's own reads of the mounts, the unmount, then the look (listing included) before the detach.
    expect(beforeDetach.slice(0, 3)).toEqual(['mounts', 'unmount', 'mounts']);
    expect(beforeDetach.slice(3)).toContain('listing');
    expect(host.mounts).toHaveLength(0);
    await agent.stop();
  });

  it("the look between a move away's unmount and detach does not probe a volume this process has seen formatted", async () => {
    const { host, driver, control, agent, other } = await mountedHereWithOther();
    const events: string[] = [];
    noteCalls(events, host, 'hasFilesystem', 'probe');
    noteCalls(events, host, 'unmount', 'unmount');
    noteCalls(events, driver, 'detachVolume', 'detach');
    control.setDatasets([{ ...dataset, primary: other.uuid }]);
    await eventually(() => (control.last()?.volumes ?? []).every((v) => v.attached_to === null));
    expect(events).toEqual(['unmount', 'detach']);
    await agent.stop();
  });

  it("a configuration change during a move's steps is looked at once they are done, not during them", async () => {
    const { driver, host, control, agent, other } = await mountedHereWithOther();
    const events: string[] = [];
    noteCalls(events, driver, 'listSnapshots', 'full look');
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const unmount = host.unmount.bind(host);
    host.unmount = async (mountPoint) => {
      events.push('unmount');
      await gate;
      return unmount(mountPoint);
    };
    noteCalls(events, driver, 'detachVolume', 'detach');
    const moved = { ...dataset, primary: other.uuid };
    control.setDatasets([moved]);
    await eventually(() => events.includes('unmount'));
    // Another change while the unmount runs (as the other end's report changes who is in this node's view).
    const elsewhere = { ...dataset, dataset_id: 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', primary: other.uuid };
    control.setDatasets([moved, elsewhere]);
    await pass(100);
    expect(events).toEqual(['unmount']);
    release();
    await eventually(() => (control.last()?.volumes ?? []).every((v) => v.attached_to === null));
    await pass(100);
    expect(events).toEqual(['unmount', 'detach', 'full look']);
    await agent.stop();
  });

  it('a stale view costs nothing: the unmount it decides finds nothing mounted, and the look after it decides', async () => {
    const { driver, host, control, agent, other } = await mountedHereWithOther();
    // Unmounted behind the agent's back: its view still says mounted.
    host.mounts = [];
    const unmount = host.unmount.bind(host);
    let unmounts = 0;
    host.unmount = async (mountPoint) => (unmounts++, unmount(mountPoint));
    control.setDatasets([{ ...dataset, primary: other.uuid }]);
    await eventually(() => (control.last()?.volumes ?? []).every((v) => v.attached_to === null));
    expect(unmounts).toBe(0);
    expect([...driver.volumes.values()].every((v) => v.attachedTo === null)).toBe(true);
    await agent.stop();
  });

  /**
   * DS made and mounted here, moved to the other node (which took and mounted it), then moved back: this node
   * waits for the holder's release, with the pool watch on. Returns with the move back configured, the release
   * not yet made.
   */
  /** The pool watch's callback of each movedBackWaiting set-up, by its driver. */
  const poolWatches = new Map<Fakes['driver'], () => void>();
  const poolChangedOf = (driver: Fakes['driver']): (() => void) => poolWatches.get(driver)!;

  async function movedBackWaiting(concurrency?: number) {
    let poolChanged: (() => void) | undefined;
    const parts = setup({
      ...(concurrency !== undefined ? { concurrency } : {}),
      resyncIntervalMs: 60_000,
      poolChanges: (onChange) => ((poolChanged = onChange), () => undefined),
    });
    const { driver, control, agent } = parts;
    agent.start();
    poolWatches.set(driver, () => poolChanged!());
    const holder = (mounted: boolean): NodeState => ({
      ...otherNode([]),
      manifestations: mounted ? [{ dataset_id: DS, blockdevice_id: 'vol-0', size: 64 * MiB, status: 'mounted' }] : [],
    });
    control.setNodes([holder(false)]);
    control.setDatasets([dataset]);
    await eventually(() => control.last()?.manifestations[0]?.status === 'mounted');
    await pass(50);
    control.setDatasets([{ ...dataset, primary: holder(false).uuid }]);
    await eventually(() => (control.last()?.volumes ?? []).every((v) => v.attached_to === null));
    await pass(50);
    // The other node attaches and mounts it, and says so.
    const vol = driver.volumes.get('vol-0')!;
    driver.volumes.set('vol-0', { ...vol, attachedTo: 'i-other' });
    control.setNodes([holder(true)]);
    await pass(50);
    control.setDatasets([dataset]);
    await pass(100);
    const release = (): void => {
      driver.volumes.set('vol-0', { ...vol, attachedTo: null });
      poolChanged!();
    };
    return { ...parts, release, holder };
  }

  it('a move here that the release started takes no full look after its mount when it was all this node waited for', async () => {
    const { driver, control, agent, release, holder } = await movedBackWaiting();
    const events: string[] = [];
    // Only the full look lists the backend's snapshots (no dataset here has any configured).
    noteCalls(events, driver, 'listSnapshots', 'full look');
    release();
    await eventually(() => control.last()?.manifestations[0]?.status === 'mounted', 2000);
    // The holder's report of its release comes after: nothing waits for it any more.
    control.setNodes([holder(false)]);
    await pass(200);
    expect(events).toEqual([]);
    await agent.stop();
  });

  it('a release with a waiting dataset it could not start (no room) still takes the full look', async () => {
    const { driver, control, agent, release } = await movedBackWaiting(1);
    // A second dataset waits for the other node too; one worker at a time: the release starts DS only.
    const second = { ...dataset, dataset_id: 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb' };
    driver.volumes.set('vol-b', {
      blockdeviceId: 'vol-b',
      datasetId: second.dataset_id,
      size: 64 * MiB,
      attachedTo: 'i-other',
    });
    control.setDatasets([dataset, second]);
    await pass(100);
    const events: string[] = [];
    noteCalls(events, driver, 'listSnapshots', 'full look');
    release();
    await eventually(
      () => control.last()?.manifestations.some((m) => m.dataset_id === DS && m.status === 'mounted') === true,
      2000,
    );
    await eventually(() => events.includes('full look'), 2000);
    await agent.stop();
  });

  it('the attach of a volume this process has seen holding a file system is followed by its mount with no look', async () => {
    const { driver, host, control, agent, release } = await movedBackWaiting();
    const events: string[] = [];
    noteCalls(events, driver, 'attachVolume', 'attach');
    noteCalls(events, host, 'hasFilesystem', 'probe');
    noteCalls(events, host, 'listMounts', 'mounts');
    noteCalls(events, host, 'mount', 'mount');
    release();
    await eventually(() => control.last()?.manifestations[0]?.status === 'mounted', 2000);
    // Between the attach and the mount only the mount action's own read of the mounts: no look (no probe either).
    expect(events.slice(events.indexOf('attach'), events.indexOf('mount') + 1)).toEqual(['attach', 'mounts', 'mount']);
    expect(events).not.toContain('probe');
    await agent.stop();
  });

  it('the attach of a volume this process never saw holding a file system is looked at before its mount', async () => {
    const { driver, host, control, agent } = setup({ resyncIntervalMs: 60_000 });
    // Made and formatted elsewhere: this agent never looked at its file system.
    driver.volumes.set('vol-other', { blockdeviceId: 'vol-other', datasetId: DS, size: 64 * MiB, attachedTo: null });
    host.formatted.add('/dev/fake/vol-other');
    const events: string[] = [];
    noteCalls(events, driver, 'attachVolume', 'attach');
    noteCalls(events, host, 'hasFilesystem', 'probe');
    noteCalls(events, host, 'mount', 'mount');
    agent.start();
    control.setDatasets([dataset]);
    await eventually(() => control.last()?.manifestations[0]?.status === 'mounted', 2000);
    expect(events.slice(events.indexOf('attach'))).toEqual(['attach', 'probe', 'mount']);
    await agent.stop();
  });

  it('a release that comes while the worker a report started is on a look listed before it is not lost', async () => {
    const { driver, control, agent, holder } = await movedBackWaiting();
    // The holder reports it unmounted (still attached: it detaches next): that report starts a worker here,
    // whose look lists the pool before the detach and answers only after the release came.
    let stale: ReturnType<typeof driver.listVolumes> | undefined;
    let answer!: () => void;
    const held = new Promise<void>((resolve) => (answer = resolve));
    const list = driver.listVolumes.bind(driver);
    driver.listVolumes = async () => {
      if (stale !== undefined) return list();
      stale = list();
      const listed = await stale;
      await held;
      return listed;
    };
    control.setNodes([holder(false)]);
    await eventually(() => stale !== undefined, 2000);
    // The detach (the pool watch tells), then the stale listing's answer.
    const vol = driver.volumes.get('vol-0')!;
    driver.volumes.set('vol-0', { ...vol, attachedTo: null });
    poolChangedOf(driver)();
    answer();
    await eventually(() => control.last()?.manifestations[0]?.status === 'mounted', 2000);
    await agent.stop();
  });

  it('a move here that a pool change started attaches on the view with the release assumed, with no look before it', async () => {
    const { driver, host, control, agent, release } = await movedBackWaiting();
    const events: string[] = [];
    noteCalls(events, driver, 'listVolumes', 'list the pool');
    noteCalls(events, driver, 'attachVolume', 'attach');
    noteCalls(events, host, 'mount', 'mount');
    release();
    await eventually(() => control.last()?.manifestations[0]?.status === 'mounted', 2000);
    expect(events.slice(0, 2)).toEqual(['attach', 'mount']);
    expect(control.last()?.errors).toEqual([]);
    await agent.stop();
  });

  it('a pool change that is not the release: the attach on the assumed release is refused, recorded as no failure, and the worker looks; the release then mounts at once', async () => {
    const { driver, host, control, agent, release } = await movedBackWaiting();
    const events: string[] = [];
    noteCalls(events, driver, 'listVolumes', 'list the pool');
    noteCalls(events, driver, 'attachVolume', 'attach');
    noteCalls(events, host, 'listMounts', 'mounts');
    // Some other record changed: the holder still has the volume.
    poolChangedOf(driver)();
    await eventually(() => events.includes('attach'), 2000);
    await pass(50);
    // The look after the refused attach (the attach itself reads no mounts).
    expect(events.slice(events.indexOf('attach'))).toEqual(expect.arrayContaining(['list the pool', 'mounts']));
    expect(host.mounts).toHaveLength(0);
    expect(control.last()?.errors).toEqual([]);
    // No backoff: the release's own pool change mounts it.
    release();
    await eventually(() => control.last()?.manifestations[0]?.status === 'mounted', 500);
    expect(control.last()?.errors).toEqual([]);
    await agent.stop();
  });
});
