/**
 * EbsDriver against moto's EC2 server (the EC2 side is moto; the host side, the
 * block device that EBS would give the instance, is a loop device per volume).
 */
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  AttachVolumeCommand,
  CreateSnapshotCommand,
  CreateVolumeCommand,
  DescribeSnapshotsCommand,
  type DescribeSnapshotsCommandOutput,
  DescribeVolumesCommand,
  type EC2Client,
} from '@aws-sdk/client-ec2';
import { isStorageError } from '../BlockDeviceApi';
import { blockDeviceApiContract, expectStorageError } from '../testing/contract';
import {
  EbsDriver,
  snapshotStatus,
  TAG_CLUSTER,
  TAG_DATASET,
  TAG_SNAPSHOT,
  TAG_SOURCE_VOLUME,
  TAG_TEMPORARY,
  TAG_TEMPORARY_SINCE,
  type EbsTiming,
} from './EbsDriver';
import type { EbsHost } from './devices';
import { GiB } from './profiles';
import {
  addAwsAttachRule,
  addAwsPagination,
  addFault,
  awsError,
  FAST_EBS_TIMING,
  LoopbackEbsHosts,
  motoClient,
  motoConfig,
  noDevice,
  REGION,
  runInstances,
  startMoto,
  ZONE,
  type MotoServer,
} from './motoSupport';

// The first run may install moto (scripts/moto.sh) before the suite starts.
jest.setTimeout(300_000);

let moto: MotoServer;
let raw: EC2Client;
let instances: string[];

beforeAll(async () => {
  moto = await startMoto();
  raw = motoClient(moto.endpoint);
  instances = await runInstances(raw, 4);
});

afterAll(async () => {
  raw?.destroy();
  await moto?.stop();
});

function driver(
  options: { clusterId?: string; instance?: string; ec2?: EC2Client; host?: EbsHost; timing?: Partial<EbsTiming> } = {},
): { d: EbsDriver; ec2: EC2Client } {
  const ec2 = options.ec2 ?? motoClient(moto.endpoint);
  const d = new EbsDriver({
    config: motoConfig(moto, options.instance ?? instances[0], options.clusterId),
    ec2,
    host: options.host ?? noDevice,
    timing: { ...FAST_EBS_TIMING, ...options.timing },
  });
  return { d, ec2 };
}

describe('EbsDriver on moto', () => {
  blockDeviceApiContract(
    'EbsDriver (moto EC2, loop devices as the host side)',
    async () => {
      const clusterId = randomUUID();
      const root = await fs.mkdtemp(path.join(os.tmpdir(), 'flocker-ebs-test-'));
      const hosts = new LoopbackEbsHosts(root, raw);
      const make = (instance: string) => {
        const ec2 = motoClient(moto.endpoint);
        addAwsAttachRule(ec2);
        hosts.addSnapshotData(ec2);
        return driver({ clusterId, instance, ec2, host: hosts.hostFor(instance) }).d;
      };
      return { driver: make(instances[0]), driverOnOtherInstance: make(instances[1]), cleanup: () => hosts.cleanup() };
    },
    { temporaryVolumes: (d) => (d as EbsDriver).temporaryVolumes() },
  );

  it('tags volumes with the cluster, dataset and Name, in the configured zone, and maps profiles to volume types', async () => {
    const clusterId = randomUUID();
    const { d } = driver({ clusterId });
    const datasetId = randomUUID();
    const cases: [string | undefined, number, string][] = [
      [undefined, 1, 'gp3'],
      ['silver', 1, 'gp3'],
      ['gold', 8, 'io2'],
      ['gold', 2, 'gp3'],
      ['bronze', 10, 'gp3'],
      ['bronze', 125, 'sc1'],
    ];
    for (const [profile, gib, type] of cases) {
      const v = await d.createVolume(datasetId, gib * GiB, profile === undefined ? {} : { profile });
      const aws = (await raw.send(new DescribeVolumesCommand({ VolumeIds: [v.blockdeviceId] }))).Volumes?.[0];
      expect(aws).toMatchObject({ AvailabilityZone: ZONE, Size: gib, VolumeType: type });
      const tags = Object.fromEntries((aws?.Tags ?? []).map((t) => [t.Key, t.Value]));
      expect(tags).toMatchObject({ [TAG_CLUSTER]: clusterId, [TAG_DATASET]: datasetId, Name: `flocker-${datasetId}` });
      if (type === 'io2') expect(aws?.Iops).toBe(gib * 500);
      await d.destroyVolume(v.blockdeviceId);
    }
    await expectStorageError(d.createVolume(datasetId, 16_385 * GiB), 'INVALID_SIZE');
  });

  it('never lists or touches volumes without its cluster tag or of another cluster', async () => {
    const clusterId = randomUUID();
    const { d } = driver({ clusterId });
    const { d: other } = driver({ clusterId: randomUUID() });
    const mine = await d.createVolume(randomUUID(), GiB);
    const theirs = await other.createVolume(randomUUID(), GiB);
    const untagged = (await raw.send(new CreateVolumeCommand({ AvailabilityZone: ZONE, Size: 1 }))).VolumeId ?? '';
    const noDataset =
      (
        await raw.send(
          new CreateVolumeCommand({
            AvailabilityZone: ZONE,
            Size: 1,
            TagSpecifications: [{ ResourceType: 'volume', Tags: [{ Key: TAG_CLUSTER, Value: clusterId }] }],
          }),
        )
      ).VolumeId ?? '';
    expect((await d.listVolumes()).map((v) => v.blockdeviceId)).toEqual([mine.blockdeviceId]);
    expect((await other.listVolumes()).map((v) => v.blockdeviceId)).toEqual([theirs.blockdeviceId]);
    for (const id of [theirs.blockdeviceId, untagged, noDataset]) {
      await expectStorageError(d.attachVolume(id, instances[0]), 'UNKNOWN_VOLUME');
      await expectStorageError(d.destroyVolume(id), 'UNKNOWN_VOLUME');
      await expectStorageError(d.detachVolume(id, { force: true }), 'UNKNOWN_VOLUME');
      await expectStorageError(d.getDevicePath(id), 'UNKNOWN_VOLUME');
      await expectStorageError(d.resizeVolume(id, 5 * GiB), 'UNKNOWN_VOLUME');
      const aws = (await raw.send(new DescribeVolumesCommand({ VolumeIds: [id] }))).Volumes?.[0];
      expect(aws).toMatchObject({ State: 'available', Size: 1, Attachments: [] });
    }
    // Attached elsewhere by someone else: a force detach still must not touch it.
    await raw.send(new AttachVolumeCommand({ VolumeId: untagged, InstanceId: instances[3], Device: '/dev/sdz' }));
    await expectStorageError(d.detachVolume(untagged, { force: true }), 'UNKNOWN_VOLUME');
    expect(
      (await raw.send(new DescribeVolumesCommand({ VolumeIds: [untagged] }))).Volumes?.[0]?.Attachments?.[0]
        ?.InstanceId,
    ).toBe(instances[3]);
  });

  it('follows NextToken through every page of DescribeVolumes', async () => {
    const clusterId = randomUUID();
    const ec2 = motoClient(moto.endpoint);
    const paging = addAwsPagination(ec2);
    const { d } = driver({ clusterId, ec2, timing: { pageSize: 5 } });
    const created = await Promise.all(Array.from({ length: 12 }, () => d.createVolume(randomUUID(), GiB)));
    paging.pages.length = 0;
    const listed = await d.listVolumes();
    expect(listed.map((v) => v.blockdeviceId).sort()).toEqual(created.map((v) => v.blockdeviceId).sort());
    expect(paging.pages).toEqual([5, 5, 2]);
  });

  it('retries throttled calls (RequestLimitExceeded, 5xx, network) with backoff and then succeeds', async () => {
    const ec2 = motoClient(moto.endpoint);
    const throttle = addFault(ec2, {
      command: 'CreateVolumeCommand',
      times: 3,
      error: () => awsError('RequestLimitExceeded', 'Request limit exceeded.', 503),
    });
    const delays: number[] = [];
    const d = new EbsDriver({
      config: motoConfig(moto, instances[0]),
      ec2,
      host: noDevice,
      timing: FAST_EBS_TIMING,
      sleep: async (ms) => void delays.push(ms),
    });
    const v = await d.createVolume(randomUUID(), GiB);
    expect(throttle.injected).toBe(3);
    expect((await d.listVolumes()).map((x) => x.blockdeviceId)).toEqual([v.blockdeviceId]);
    // Jittered exponential: each delay within [ceiling/2, ceiling] of base·2^n.
    expect(delays.length).toBeGreaterThanOrEqual(3);
    delays.slice(0, 3).forEach((ms, n) => {
      const ceiling = Math.min(FAST_EBS_TIMING.retryMaxMs ?? 0, (FAST_EBS_TIMING.retryBaseMs ?? 0) * 2 ** n);
      expect(ms).toBeGreaterThanOrEqual(ceiling / 2);
      expect(ms).toBeLessThanOrEqual(ceiling);
    });
    const serverSide = addFault(ec2, {
      times: 2,
      error: () => awsError('InternalError', 'An internal error has occurred', 500),
    });
    const network = addFault(ec2, {
      times: 2,
      error: () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }),
    });
    await d.attachVolume(v.blockdeviceId, instances[0]);
    expect(serverSide.injected + network.injected).toBe(4);
    await d.detachVolume(v.blockdeviceId);
  });

  it('gives up after maxAttempts and surfaces a permanent error as BACKEND_ERROR with the provider message', async () => {
    const ec2 = motoClient(moto.endpoint);
    const { d } = driver({ ec2, timing: { maxAttempts: 3 } });
    const forever = addFault(ec2, {
      times: 1000,
      command: 'DescribeVolumesCommand',
      error: () => awsError('RequestLimitExceeded', 'Request limit exceeded.', 503),
    });
    await expectStorageError(d.listVolumes(), 'BACKEND_ERROR');
    expect(forever.calls).toBe(3);
    const ec2b = motoClient(moto.endpoint);
    const { d: d2 } = driver({ ec2: ec2b });
    const denied = addFault(ec2b, {
      times: 1000,
      command: 'CreateVolumeCommand',
      error: () => awsError('UnauthorizedOperation', 'You are not authorized to perform this operation.', 403),
    });
    const failure = await d2.createVolume(randomUUID(), GiB).catch((e: unknown) => e);
    expect(isStorageError(failure, 'BACKEND_ERROR')).toBe(true);
    expect(String((failure as Error).message)).toContain(
      'UnauthorizedOperation: You are not authorized to perform this operation.',
    );
    expect(denied.calls).toBe(1); // permanent: not retried
  });

  it('adopts the volume when the create answer is lost (timeout), instead of leaking it or making a second', async () => {
    const clusterId = randomUUID();
    const ec2 = motoClient(moto.endpoint);
    const lost = addFault(ec2, {
      command: 'CreateVolumeCommand',
      times: 2,
      afterSending: true,
      error: () => Object.assign(new Error('Connection timed out after 30000 ms'), { name: 'TimeoutError' }),
    });
    const { d } = driver({ clusterId, ec2 });
    const datasetId = randomUUID();
    const v = await d.createVolume(datasetId, 2 * GiB, { profile: 'silver' });
    expect(lost.injected).toBe(1); // the retry found the first one; no second CreateVolume
    expect(v).toEqual({
      blockdeviceId: v.blockdeviceId,
      datasetId,
      size: 2 * GiB,
      attachedTo: null,
      profile: 'silver',
    });
    expect(await d.listVolumes()).toEqual([v]);
    // Even when every try times out, the volume made by one of them is adopted.
    const ec2b = motoClient(moto.endpoint);
    const allLost = addFault(ec2b, {
      command: 'CreateVolumeCommand',
      times: 1000,
      afterSending: true,
      error: () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }),
    });
    const { d: d2 } = driver({ clusterId, ec2: ec2b, timing: { maxAttempts: 1 } });
    const w = await d2.createVolume(randomUUID(), GiB);
    expect(allLost.injected).toBe(1);
    expect((await d.listVolumes()).map((x) => x.blockdeviceId).sort()).toEqual(
      [v.blockdeviceId, w.blockdeviceId].sort(),
    );
  });

  it('maps VolumeInUse and IncorrectState from EC2 to ALREADY_ATTACHED / VOLUME_ATTACHED', async () => {
    const clusterId = randomUUID();
    const ec2 = motoClient(moto.endpoint);
    const { d } = driver({ clusterId, ec2 });
    const v = await d.createVolume(randomUUID(), GiB);
    // Another instance grabs the volume between our check and our AttachVolume; EC2 answers IncorrectState.
    const stolen = addFault(ec2, {
      command: 'AttachVolumeCommand',
      times: 1,
      when: async () => {
        await raw.send(
          new AttachVolumeCommand({ VolumeId: v.blockdeviceId, InstanceId: instances[2], Device: '/dev/sdf' }),
        );
      },
      error: () => awsError('IncorrectState', `vol ${v.blockdeviceId} is 'in-use'`),
    });
    const failure = await d.attachVolume(v.blockdeviceId, instances[0]).catch((e: unknown) => e);
    expect(stolen.injected).toBe(1);
    expect(isStorageError(failure, 'ALREADY_ATTACHED')).toBe(true);
    expect(String((failure as Error).message)).toContain(instances[2]);
    await d.detachVolume(v.blockdeviceId, { force: true });
    // Attached between our check and DeleteVolume: moto itself answers VolumeInUse.
    const raced = addFault(ec2, {
      command: 'DeleteVolumeCommand',
      times: 1,
      when: async () => {
        await raw.send(
          new AttachVolumeCommand({ VolumeId: v.blockdeviceId, InstanceId: instances[2], Device: '/dev/sdg' }),
        );
      },
    });
    await expectStorageError(d.destroyVolume(v.blockdeviceId), 'VOLUME_ATTACHED');
    expect(raced.injected).toBe(1);
    expect((await raw.send(new DescribeVolumesCommand({ VolumeIds: [v.blockdeviceId] }))).Volumes?.[0]?.State).toBe(
      'in-use',
    );
  });

  it('waits out EC2 eventual consistency: a new volume missing from DescribeVolumes for a moment', async () => {
    const ec2 = motoClient(moto.endpoint);
    const { d } = driver({ ec2 });
    const notYet = addFault(ec2, {
      command: 'DescribeVolumesCommand',
      times: 2,
      error: () => awsError('InvalidVolume.NotFound', "The volume 'vol-x' does not exist."),
    });
    const v = await d.createVolume(randomUUID(), GiB);
    expect(notYet.injected).toBe(2);
    expect((await d.listVolumes()).map((x) => x.blockdeviceId)).toEqual([v.blockdeviceId]);
  });

  it('picks a device name not used on the instance, and attaches several volumes at once without clashes', async () => {
    const { d } = driver({ instance: instances[3] });
    const vs = await Promise.all(Array.from({ length: 4 }, () => d.createVolume(randomUUID(), GiB)));
    await Promise.all(vs.map((v) => d.attachVolume(v.blockdeviceId, instances[3])));
    const devices = await Promise.all(
      vs.map(
        async (v) =>
          (await raw.send(new DescribeVolumesCommand({ VolumeIds: [v.blockdeviceId] }))).Volumes?.[0]?.Attachments?.[0]
            ?.Device,
      ),
    );
    expect(new Set(devices).size).toBe(4);
    // /dev/sdz (used earlier by a test on this instance) and the root device are never chosen.
    for (const dev of devices) expect(dev).toMatch(/^\/dev\/sd[f-p]$/);
    await Promise.all(vs.map((v) => d.detachVolume(v.blockdeviceId)));
  });

  it('refuses to detach a busy device without force, and force-detaches from a dead instance, leaving it attachable elsewhere', async () => {
    const busyHost: EbsHost = { ...noDevice, findDevice: async () => '/dev/fake', isBusy: async () => true };
    const clusterId = randomUUID();
    const { d } = driver({ clusterId, host: busyHost });
    const v = await d.createVolume(randomUUID(), GiB);
    await d.attachVolume(v.blockdeviceId, instances[0]);
    await expectStorageError(d.detachVolume(v.blockdeviceId), 'DEVICE_BUSY');
    // The holder's device is still busy there: a real forced DetachVolume removes the attachment from the
    // hypervisor all the same, so the dead instance's I/O fails. moto models the EC2 side of that.
    const { d: survivor } = driver({ clusterId, instance: instances[1] });
    await survivor.detachVolume(v.blockdeviceId, { force: true });
    expect((await survivor.listVolumes())[0].attachedTo).toBeNull();
    expect(
      (await raw.send(new DescribeVolumesCommand({ VolumeIds: [v.blockdeviceId] }))).Volumes?.[0]?.Attachments ?? [],
    ).toEqual([]);
    await survivor.attachVolume(v.blockdeviceId, instances[1]);
    expect((await d.listVolumes())[0].attachedTo).toBe(instances[1]);
    await survivor.detachVolume(v.blockdeviceId);
  });

  it('learns its instance id from the metadata function when none is configured, and caches it', async () => {
    let calls = 0;
    const d = new EbsDriver({
      config: {
        backend: 'aws',
        region: REGION,
        zone: ZONE,
        cluster_id: 'c',
        endpoint: moto.endpoint,
        access_key_id: 'a',
        secret_access_key: 'b',
      },
      fetchInstanceId: async () => {
        calls++;
        if (calls === 1) throw new Error('IMDS not reachable yet');
        return instances[2];
      },
      host: noDevice,
    });
    await expect(d.computeInstanceId()).rejects.toThrow('IMDS not reachable yet');
    expect(await d.computeInstanceId()).toBe(instances[2]);
    expect(await d.computeInstanceId()).toBe(instances[2]);
    expect(calls).toBe(2);
    // The client it built itself from config talks to moto with the explicit keys.
    expect(await d.listVolumes()).toEqual([]);
  });

  describe('snapshots (issue 20)', () => {
    it('maps EBS snapshot states: pending -> creating, completed -> ready, error -> error', () => {
      expect(['pending', 'completed', 'error', 'recoverable', undefined].map(snapshotStatus)).toEqual([
        'creating',
        'ready',
        'error',
        'creating',
        'creating',
      ]);
    });

    it('tags snapshots with the cluster, dataset, snapshot id and source; clones pass SnapshotId to CreateVolume', async () => {
      const clusterId = randomUUID();
      const { d } = driver({ clusterId });
      const v = await d.createVolume(randomUUID(), 2 * GiB);
      const snapshotId = randomUUID();
      const s = await d.createSnapshot(v.blockdeviceId, snapshotId);
      expect(s.backendId).toMatch(/^snap-/);
      const aws = (await raw.send(new DescribeSnapshotsCommand({ SnapshotIds: [s.backendId] }))).Snapshots?.[0];
      const tags = Object.fromEntries((aws?.Tags ?? []).map((t) => [t.Key, t.Value]));
      expect(tags).toMatchObject({
        [TAG_CLUSTER]: clusterId,
        [TAG_DATASET]: v.datasetId,
        [TAG_SNAPSHOT]: snapshotId,
        [TAG_SOURCE_VOLUME]: v.blockdeviceId,
        Name: `flocker-snapshot-${snapshotId}`,
      });
      expect(aws).toMatchObject({ VolumeId: v.blockdeviceId, VolumeSize: 2 });
      const clone = await d.createVolumeFromSnapshot(snapshotId, randomUUID(), 3 * GiB, { profile: 'gold' });
      const cloneAws = (await raw.send(new DescribeVolumesCommand({ VolumeIds: [clone.blockdeviceId] }))).Volumes?.[0];
      expect(cloneAws).toMatchObject({ SnapshotId: s.backendId, Size: 3, AvailabilityZone: ZONE });
      expect(clone).toMatchObject({ size: 3 * GiB, profile: 'gold', attachedTo: null });
      await d.destroyVolume(clone.blockdeviceId);
      await d.destroyVolume(v.blockdeviceId);
      await d.destroySnapshot(snapshotId);
    });

    it('openSnapshot makes a temporary volume tagged flocker-temporary, hidden from listVolumes; any node removes a leftover older than the bound or of a destroyed snapshot', async () => {
      const clusterId = randomUUID();
      const { d: a } = driver({ clusterId, instance: instances[0] });
      const { d: b } = driver({ clusterId, instance: instances[1], timing: { temporaryMaxAgeMs: 600_000 } });
      // Stands for b after the bound has passed.
      const { d: late } = driver({ clusterId, instance: instances[1], timing: { temporaryMaxAgeMs: 0 } });
      const v = await a.createVolume(randomUUID(), GiB);
      const s1 = await a.createSnapshot(v.blockdeviceId, randomUUID());
      const s2 = await a.createSnapshot(v.blockdeviceId, randomUUID());
      // A crash: opened on a, never released.
      const crashed = await a.openSnapshot(s1.snapshotId);
      expect(crashed).toMatchObject({ path: '/dev/null', size: GiB });
      const [temp] = await a.temporaryVolumes();
      const aws = (await raw.send(new DescribeVolumesCommand({ VolumeIds: [temp ?? ''] }))).Volumes?.[0];
      const tags: Record<string, string | undefined> = Object.fromEntries(
        (aws?.Tags ?? []).map((t) => [t.Key ?? '', t.Value]),
      );
      expect(tags).toMatchObject({ [TAG_CLUSTER]: clusterId, [TAG_TEMPORARY]: `backup-${s1.snapshotId}` });
      expect(Number.isNaN(Date.parse(tags[TAG_TEMPORARY_SINCE] ?? ''))).toBe(false);
      expect(aws).toMatchObject({ SnapshotId: s1.backendId, Attachments: [{ InstanceId: instances[0] }] });
      expect(await a.listVolumes()).toEqual([v]);
      expect(await b.listVolumes()).toEqual([v]);
      // Within the bound, with its snapshot there: another node's open leaves it alone.
      const young = await b.openSnapshot(s2.snapshotId);
      expect(await a.temporaryVolumes()).toHaveLength(2);
      expect(await a.temporaryVolumes()).toContain(temp);
      await young.release();
      expect(await a.temporaryVolumes()).toEqual([temp]);
      // Past the bound: force-detached from a and deleted by the next open on any node.
      const fresh = await late.openSnapshot(s2.snapshotId);
      expect(await a.temporaryVolumes()).not.toContain(temp);
      await fresh.release();
      expect(await a.temporaryVolumes()).toEqual([]);
      await crashed.release(); // late: harmless
      // Its snapshot destroyed: removed by the next open, whatever its age.
      await a.openSnapshot(s1.snapshotId);
      expect(await a.temporaryVolumes()).toHaveLength(1);
      await a.destroySnapshot(s1.snapshotId);
      const after = await b.openSnapshot(s2.snapshotId);
      expect(await a.temporaryVolumes()).toHaveLength(1);
      await after.release();
      expect(await a.temporaryVolumes()).toEqual([]);
      await expectStorageError(a.openSnapshot(s1.snapshotId), 'UNKNOWN_SNAPSHOT');
      expect(await a.listVolumes()).toEqual([v]);
      await a.destroySnapshot(s2.snapshotId);
      await a.destroyVolume(v.blockdeviceId);
    });

    it("never lists another cluster's snapshots, untagged ones, or EC2's own", async () => {
      const clusterId = randomUUID();
      const { d } = driver({ clusterId });
      const { d: other } = driver({ clusterId: randomUUID() });
      const v = await d.createVolume(randomUUID(), GiB);
      const w = await other.createVolume(randomUUID(), GiB);
      const mine = await d.createSnapshot(v.blockdeviceId, randomUUID());
      const theirs = await other.createSnapshot(w.blockdeviceId, randomUUID());
      await raw.send(new CreateSnapshotCommand({ VolumeId: v.blockdeviceId }));
      expect(await d.listSnapshots()).toEqual([mine]);
      expect(await other.listSnapshots()).toEqual([theirs]);
      await expectStorageError(d.createVolumeFromSnapshot(theirs.snapshotId, randomUUID(), GiB), 'UNKNOWN_SNAPSHOT');
      await d.destroySnapshot(theirs.snapshotId);
      expect(await other.listSnapshots()).toEqual([theirs]);
    });

    it('lists a pending snapshot as creating and refuses to clone it with SNAPSHOT_NOT_READY until it completes', async () => {
      const ec2 = motoClient(moto.endpoint);
      let pending = true;
      ec2.middlewareStack.add(
        (next, context) => async (args) => {
          const result = await next(args);
          if (pending && context.commandName === 'DescribeSnapshotsCommand') {
            for (const snap of (result.output as DescribeSnapshotsCommandOutput).Snapshots ?? [])
              snap.State = 'pending';
          }
          return result;
        },
        { step: 'initialize', name: 'flockerTestPendingSnapshots' },
      );
      const { d } = driver({ ec2 });
      const v = await d.createVolume(randomUUID(), GiB);
      const s = await d.createSnapshot(v.blockdeviceId, randomUUID());
      expect((await d.listSnapshots()).map((x) => x.status)).toEqual(['creating']);
      const datasetId = randomUUID();
      await expectStorageError(d.createVolumeFromSnapshot(s.snapshotId, datasetId, GiB), 'SNAPSHOT_NOT_READY');
      expect((await d.listVolumes()).filter((x) => x.datasetId === datasetId)).toEqual([]);
      pending = false;
      expect((await d.listSnapshots()).map((x) => x.status)).toEqual(['ready']);
      expect((await d.createVolumeFromSnapshot(s.snapshotId, datasetId, GiB)).datasetId).toBe(datasetId);
    });

    it('adopts the snapshot when the CreateSnapshot answer is lost, instead of taking a second', async () => {
      const ec2 = motoClient(moto.endpoint);
      const lost = addFault(ec2, {
        command: 'CreateSnapshotCommand',
        times: 1000,
        afterSending: true,
        error: () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }),
      });
      const { d } = driver({ ec2 });
      const v = await d.createVolume(randomUUID(), GiB);
      const snapshotId = randomUUID();
      const s = await d.createSnapshot(v.blockdeviceId, snapshotId);
      expect(lost.injected).toBe(1);
      expect(s).toMatchObject({ snapshotId, sourceBlockdeviceId: v.blockdeviceId });
      expect(await d.listSnapshots()).toEqual([s]);
      const ebs = await raw.send(
        new DescribeSnapshotsCommand({ Filters: [{ Name: `tag:${TAG_SNAPSHOT}`, Values: [snapshotId] }] }),
      );
      expect(ebs.Snapshots).toHaveLength(1);
    });
  });
});
