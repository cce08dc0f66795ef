/**
 * Review T1 S1 (session 18): an agent killed (kill -9) in the middle of a cinder-mode attach, after Cinder's
 * reservation (POST /attachments) and before os-complete, left the volume "attaching" with no attachment a
 * non-admin can see. listVolumes then said nobody holds it (attachedTo null), the same instance's attach was
 * refused (ALREADY_ATTACHED "attached to (an attachment in progress)"), and a force detach from the failover
 * node was refused ("try again when the attachment settles"): only a Cinder admin could free it.
 * Now the driver marks the volume (flocker-attaching-<instance>) before reserving and writes the attachment id
 * with the holder after it, so such a reservation is named when (and only when) its maker is provable: that
 * instance finishes it after its restart, a failover force-detaches it from a dead holder, and a reservation
 * nobody can prove (an older agent's, or two marks) is left alone.
 * Against the real Cinder of scripts/cinder.sh (root; first run installs it).
 */
import { randomUUID } from 'node:crypto';
import { systemClock } from '@flocker/runtime';
import {
  attachingMarkerKey,
  CinderDriver,
  MARK_WRITE_BUDGET_MS,
  META_ATTACHED_TO,
  META_ATTACHMENT_ID,
  type CinderDriverDeps,
} from './CinderDriver';
import type { HostConnector } from './CinderClient';
import { quickPolls, startTestCinder, type TestCinder } from './testCinder';

jest.setTimeout(10 * 60 * 1000);

const PROJECT = 'f10cce7a5e7d4c8b9f1a2b3c4d5e6f70';

let cinder: TestCinder;
const drivers: CinderDriver[] = [];
const cleanups: (() => Promise<void>)[] = [];

function makeDriver(url: string, clusterId: string, instanceId: string, deps: CinderDriverDeps = {}): CinderDriver {
  const d = new CinderDriver(
    {
      backend: 'openstack',
      auth_plugin: 'noauth',
      cinder_url: url,
      project_id: PROJECT,
      cluster_id: clusterId,
      instance_id: instanceId,
      attach_mode: 'cinder',
      extend_attached: 'reattach',
      connector: { ip: '127.0.0.1' },
      operation_timeout_seconds: 60,
    },
    { ...quickPolls, ...deps },
  );
  drivers.push(d);
  return d;
}

/** What the killed agent's cinderAttach had sent: the reservation, with this host as the connector's host. */
function connectorOf(instanceId: string): HostConnector {
  return { host: instanceId, ip: '127.0.0.1', platform: 'x86_64', os_type: 'linux', multipath: false };
}

beforeAll(async () => {
  cinder = await startTestCinder('noauth');
});

afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  for (const d of drivers) await d.close().catch(() => undefined);
  await cinder?.purge();
});

describe('CinderDriver (cinder mode): an attach killed between reservation and completion', () => {
  /**
   * What a killed cinderAttach leaves, step by step as the driver does it: its mark, Cinder's reservation with
   * this host's connector, then (at the later kill point) the holder and the attachment id.
   */
  async function crashedAttach(
    withHolderWritten: boolean,
    options: { marks?: string[]; reserver?: string; staleMarks?: string[] } = {},
  ) {
    const clusterId = randomUUID();
    const me = `t1-host-a-${randomUUID().slice(0, 8)}`;
    const reserver = options.reserver ?? me;
    const before = makeDriver(cinder.url, clusterId, me);
    const v = await before.createVolume(randomUUID(), 1);
    const marks = options.marks ?? [reserver];
    // A stale mark: left an hour ago by an attach killed before it reserved (it never reached Cinder).
    const staleAt = new Date(Date.now() - 3600_000).toISOString();
    const written = {
      ...Object.fromEntries((options.staleMarks ?? []).map((m) => [attachingMarkerKey(m), staleAt])),
      ...Object.fromEntries(marks.map((m) => [attachingMarkerKey(m), new Date().toISOString()])),
    };
    if (Object.keys(written).length > 0) await before.client.setVolumeMetadata(v.blockdeviceId, written);
    const reservation = await before.client.createAttachment(v.blockdeviceId, null, connectorOf(reserver));
    if (withHolderWritten)
      await before.client.setVolumeMetadata(v.blockdeviceId, {
        [META_ATTACHED_TO]: reserver,
        [META_ATTACHMENT_ID]: reservation.id,
      });
    cleanups.push(async () => {
      await before.client.deleteAttachment(reservation.id).catch(() => undefined);
      await before.detachVolume(v.blockdeviceId, { force: true }).catch(() => undefined);
      await before.destroyVolume(v.blockdeviceId);
    });
    // The agent is killed here; its restart is a new driver for the same instance.
    return {
      clusterId,
      me,
      reservation,
      blockdeviceId: v.blockdeviceId,
      after: makeDriver(cinder.url, clusterId, me),
    };
  }

  it('killed before the holder was written: the same instance attaches it after its restart', async () => {
    const { me, blockdeviceId, after, reservation } = await crashedAttach(false);
    const attached = await after.attachVolume(blockdeviceId, me);
    expect(attached.attachedTo).toBe(me);
    // Its own reservation was finished, not a second one made; the mark is gone once complete.
    const volume = await after.client.getVolume(blockdeviceId);
    expect(volume?.status).toBe('in-use');
    expect(volume?.attachments.map((a) => a.attachment_id)).toEqual([reservation.id]);
    expect(volume?.metadata[attachingMarkerKey(me)]).toBeUndefined();
    await after.detachVolume(blockdeviceId);
  });

  it('killed after the holder was written: listVolumes names the holder, so a failover can force-detach it', async () => {
    const { clusterId, me, blockdeviceId } = await crashedAttach(true);
    const survivor = makeDriver(cinder.url, clusterId, `t1-host-b-${randomUUID().slice(0, 8)}`);
    const listed = (await survivor.listVolumes()).find((v) => v.blockdeviceId === blockdeviceId);
    // The agent's decisions see only this: null reads as "free", so no force detach is ever planned.
    expect(listed?.attachedTo).toBe(me);
    await survivor.detachVolume(blockdeviceId, { force: true });
    const taken = await survivor.attachVolume(blockdeviceId, await survivor.computeInstanceId());
    expect(taken.attachedTo).toBe(await survivor.computeInstanceId());
    // The dead holder's marks went with its reservation.
    const volume = await survivor.client.getVolume(blockdeviceId);
    expect(volume?.metadata[attachingMarkerKey(me)]).toBeUndefined();
    await survivor.detachVolume(blockdeviceId);
  });

  it('the restarted agent sees its own reservation in listVolumes and getDevicePath finishes it', async () => {
    const { me, blockdeviceId, after } = await crashedAttach(false);
    expect((await after.listVolumes()).find((v) => v.blockdeviceId === blockdeviceId)?.attachedTo).toBe(me);
    expect(await after.getDevicePath(blockdeviceId)).toMatch(/^\/dev\/loop\d+$/);
    expect((await after.client.getVolume(blockdeviceId))?.status).toBe('in-use');
    await after.detachVolume(blockdeviceId);
  });

  it("another instance's reservation in progress is never taken or freed by this one", async () => {
    const other = `t1-host-c-${randomUUID().slice(0, 8)}`;
    const { me, blockdeviceId, after, reservation } = await crashedAttach(false, { reserver: other });
    expect((await after.listVolumes()).find((v) => v.blockdeviceId === blockdeviceId)?.attachedTo).toBe(other);
    await expect(after.attachVolume(blockdeviceId, me)).rejects.toMatchObject({ code: 'ALREADY_ATTACHED' });
    await expect(after.detachVolume(blockdeviceId)).rejects.toMatchObject({ code: 'NOT_ATTACHED_HERE' });
    expect((await after.client.listAttachments(blockdeviceId)).map((a) => a.id)).toEqual([reservation.id]);
  });

  it('a reservation whose maker cannot be proved (no mark, as older agents left; or two marks) is left alone', async () => {
    const other = `t1-host-c-${randomUUID().slice(0, 8)}`;
    for (const marks of [[], [other, `t1-host-a-stale`]]) {
      const { me, blockdeviceId, after, reservation } = await crashedAttach(false, { marks, reserver: other });
      expect((await after.listVolumes()).find((v) => v.blockdeviceId === blockdeviceId)?.attachedTo).toBeNull();
      await expect(after.attachVolume(blockdeviceId, me)).rejects.toMatchObject({ code: 'ALREADY_ATTACHED' });
      await expect(after.detachVolume(blockdeviceId, { force: true })).rejects.toMatchObject({
        code: 'BACKEND_ERROR',
      });
      expect((await after.client.listAttachments(blockdeviceId)).map((a) => a.id)).toEqual([reservation.id]);
    }
  });

  it("a stale mark (an attach killed before it reserved) never names another's unmarked reservation (review FR F1)", async () => {
    // A older agent's reservation (no mark) on a volume that still carries an hour-old mark of a killed attach.
    const stale = `t1-host-a-stale-${randomUUID().slice(0, 8)}`;
    const other = `t1-host-c-${randomUUID().slice(0, 8)}`;
    const { me, blockdeviceId, after, reservation } = await crashedAttach(false, {
      marks: [],
      staleMarks: [stale],
      reserver: other,
    });
    expect((await after.listVolumes()).find((v) => v.blockdeviceId === blockdeviceId)?.attachedTo).toBeNull();
    await expect(after.attachVolume(blockdeviceId, me)).rejects.toMatchObject({ code: 'ALREADY_ATTACHED' });
    await expect(after.detachVolume(blockdeviceId, { force: true })).rejects.toMatchObject({ code: 'BACKEND_ERROR' });
    expect((await after.client.listAttachments(blockdeviceId)).map((a) => a.id)).toEqual([reservation.id]);
  });

  it("a stale mark beside the reserver's own does not hide the reserver: its restart finishes the attach (review FR F1)", async () => {
    const stale = `t1-host-a-stale-${randomUUID().slice(0, 8)}`;
    const { me, blockdeviceId, after, reservation } = await crashedAttach(false, { staleMarks: [stale] });
    expect((await after.listVolumes()).find((v) => v.blockdeviceId === blockdeviceId)?.attachedTo).toBe(me);
    const attached = await after.attachVolume(blockdeviceId, me);
    expect(attached.attachedTo).toBe(me);
    const volume = await after.client.getVolume(blockdeviceId);
    expect(volume?.attachments.map((a) => a.attachment_id)).toEqual([reservation.id]);
    await after.detachVolume(blockdeviceId);
  });

  it("listVolumes clears this instance's own stale marks from available volumes, and nobody else's (review FR F1)", async () => {
    const clusterId = randomUUID();
    const me = `t1-host-a-${randomUUID().slice(0, 8)}`;
    const other = `t1-host-c-${randomUUID().slice(0, 8)}`;
    const driver = makeDriver(cinder.url, clusterId, me);
    const v = await driver.createVolume(randomUUID(), 1);
    cleanups.push(() => driver.destroyVolume(v.blockdeviceId));
    // Our attach killed between its mark and its reservation; another instance's mark (not ours to judge).
    const at = new Date().toISOString();
    await driver.client.setVolumeMetadata(v.blockdeviceId, {
      [attachingMarkerKey(me)]: at,
      [attachingMarkerKey(other)]: at,
    });
    const restarted = makeDriver(cinder.url, clusterId, me);
    expect((await restarted.listVolumes()).find((x) => x.blockdeviceId === v.blockdeviceId)?.attachedTo).toBeNull();
    const metadata = (await restarted.client.getVolume(v.blockdeviceId))?.metadata ?? {};
    expect(metadata[attachingMarkerKey(me)]).toBeUndefined();
    expect(metadata[attachingMarkerKey(other)]).toBe(at);
    // And the volume attaches as usual afterwards.
    expect((await restarted.attachVolume(v.blockdeviceId, me)).attachedTo).toBe(me);
    await restarted.detachVolume(v.blockdeviceId);
  });

  it('an attach whose mark took too long to write does not reserve (its mark could not prove the reservation)', async () => {
    const clusterId = randomUUID();
    const me = `t1-host-a-${randomUUID().slice(0, 8)}`;
    let skew = 0;
    const driver = makeDriver(cinder.url, clusterId, me, {
      clock: { ...systemClock, now: () => systemClock.now() + skew },
    });
    const v = await driver.createVolume(randomUUID(), 1);
    cleanups.push(() => driver.destroyVolume(v.blockdeviceId));
    const setVolumeMetadata = driver.client.setVolumeMetadata.bind(driver.client);
    driver.client.setVolumeMetadata = async (id, metadata) => {
      await setVolumeMetadata(id, metadata);
      skew += MARK_WRITE_BUDGET_MS + 1000;
    };
    await expect(driver.attachVolume(v.blockdeviceId, me)).rejects.toMatchObject({ code: 'BACKEND_ERROR' });
    const volume = await driver.client.getVolume(v.blockdeviceId);
    expect(volume?.status).toBe('available');
    expect(await driver.client.listAttachments(v.blockdeviceId)).toEqual([]);
    expect(volume?.metadata[attachingMarkerKey(me)]).toBeUndefined();
  });

  it("listVolumes leaves this instance's mark alone while an attach of its own is between its mark and its reservation", async () => {
    const clusterId = randomUUID();
    const me = `t1-host-a-${randomUUID().slice(0, 8)}`;
    const driver = makeDriver(cinder.url, clusterId, me);
    const v = await driver.createVolume(randomUUID(), 1);
    cleanups.push(() => driver.destroyVolume(v.blockdeviceId));
    const setVolumeMetadata = driver.client.setVolumeMetadata.bind(driver.client);
    let markDuringList: string | undefined;
    driver.client.setVolumeMetadata = async (id, metadata) => {
      await setVolumeMetadata(id, metadata);
      if (metadata[attachingMarkerKey(me)] === undefined) return;
      // The agent lists its volumes meanwhile (the volume is still 'available', our mark on it).
      await driver.listVolumes();
      markDuringList = (await driver.client.getVolume(id))?.metadata[attachingMarkerKey(me)];
    };
    expect((await driver.attachVolume(v.blockdeviceId, me)).attachedTo).toBe(me);
    expect(markDuringList).toBeDefined();
    await driver.detachVolume(v.blockdeviceId);
  });

  it("an attach killed after its reservation is still its instance's when that host's clock is 10 min off Cinder's", async () => {
    const clusterId = randomUUID();
    const me = `t1-host-a-${randomUUID().slice(0, 8)}`;
    const skewed = { clock: { ...systemClock, wallNow: () => systemClock.wallNow() + 600_000 } };
    const before = makeDriver(cinder.url, clusterId, me, skewed);
    const v = await before.createVolume(randomUUID(), 1);
    cleanups.push(async () => {
      await before.detachVolume(v.blockdeviceId, { force: true }).catch(() => undefined);
      await before.destroyVolume(v.blockdeviceId);
    });
    // The agent is killed (kill -9) right after Cinder made its reservation: nothing after it ever runs.
    const createAttachment = before.client.createAttachment.bind(before.client);
    let reserved: () => void = () => undefined;
    const reservation = new Promise<void>((resolve) => (reserved = resolve));
    before.client.createAttachment = async (...args) => {
      await createAttachment(...args);
      reserved();
      return new Promise(() => undefined);
    };
    void before.attachVolume(v.blockdeviceId, me);
    await reservation;
    const after = makeDriver(cinder.url, clusterId, me, skewed);
    expect((await after.listVolumes()).find((x) => x.blockdeviceId === v.blockdeviceId)?.attachedTo).toBe(me);
    expect((await after.attachVolume(v.blockdeviceId, me)).attachedTo).toBe(me);
    await after.detachVolume(v.blockdeviceId);
  });
});
