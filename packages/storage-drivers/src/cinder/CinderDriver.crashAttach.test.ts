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
import { attachingMarkerKey, CinderDriver, META_ATTACHED_TO, META_ATTACHMENT_ID } from './CinderDriver';
import type { HostConnector } from './CinderClient';
import { startTestCinder, type TestCinder } from './testCinder';

jest.setTimeout(10 * 60 * 1000);

const PROJECT = 'f10cce7a5e7d4c8b9f1a2b3c4d5e6f70';

let cinder: TestCinder;
const drivers: CinderDriver[] = [];
const cleanups: (() => Promise<void>)[] = [];

function makeDriver(url: string, clusterId: string, instanceId: string): CinderDriver {
  const d = new CinderDriver({
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
  });
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
  async function crashedAttach(withHolderWritten: boolean, options: { marks?: string[]; reserver?: string } = {}) {
    const clusterId = randomUUID();
    const me = `t1-host-a-${randomUUID().slice(0, 8)}`;
    const reserver = options.reserver ?? me;
    const before = makeDriver(cinder.url, clusterId, me);
    const v = await before.createVolume(randomUUID(), 1);
    const marks = options.marks ?? [reserver];
    if (marks.length > 0)
      await before.client.setVolumeMetadata(
        v.blockdeviceId,
        Object.fromEntries(marks.map((m) => [attachingMarkerKey(m), new Date().toISOString()])),
      );
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
});
