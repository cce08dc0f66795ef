/**
 * Review T1 S3 (session 18): an EBS volume that goes into the "error" state while being created (EC2 does this,
 * e.g. a KMS key it may not use, or no capacity) made createVolume fail but stayed, tagged with its dataset:
 * listVolumes kept showing it, so the agent took it for the dataset's volume and tried to attach it for ever,
 * never creating a good one, and the failed volume was never deleted. Now the driver deletes it (as Cinder's does).
 * EC2 side: moto, with the error state injected into its DescribeVolumes answers.
 */
import { randomUUID } from 'node:crypto';
import { DescribeVolumesCommand, type DescribeVolumesCommandOutput } from '@aws-sdk/client-ec2';
import { EbsDriver, TAG_DATASET } from './EbsDriver';
import { GiB } from './profiles';
import {
  FAST_EBS_TIMING,
  motoClient,
  motoConfig,
  noDevice,
  runInstances,
  startMoto,
  type MotoServer,
} from './motoSupport';

jest.setTimeout(300_000);

let moto: MotoServer;

beforeAll(async () => {
  moto = await startMoto();
});

afterAll(async () => {
  await moto?.stop();
});

it('a volume that went into "error" while being created is not left as the dataset\'s volume', async () => {
  const raw = motoClient(moto.endpoint);
  const [instance] = await runInstances(raw, 1);
  const ec2 = motoClient(moto.endpoint);
  const broken = new Set<string>();
  // EC2 marks the new volume "error"; it stays so (EC2 never repairs it).
  ec2.middlewareStack.add(
    (next, context) => async (args) => {
      const result = await next(args);
      if (context.commandName === 'CreateVolumeCommand') {
        const id = (result.output as { VolumeId?: string }).VolumeId;
        if (id !== undefined) broken.add(id);
      }
      if (context.commandName === 'DescribeVolumesCommand')
        for (const v of (result.output as DescribeVolumesCommandOutput).Volumes ?? [])
          if (v.VolumeId !== undefined && broken.has(v.VolumeId)) v.State = 'error';
      return result;
    },
    { step: 'initialize', name: 't1ErrorState' },
  );
  const clusterId = randomUUID();
  const d = new EbsDriver({
    config: motoConfig(moto, instance, clusterId),
    ec2,
    host: noDevice,
    timing: FAST_EBS_TIMING,
  });
  const datasetId = randomUUID();
  try {
    await expect(d.createVolume(datasetId, GiB)).rejects.toMatchObject({ code: 'BACKEND_ERROR' });
    // What the agent decides from: a listed volume of this dataset is attached, never created again.
    expect((await d.listVolumes()).filter((v) => v.datasetId === datasetId)).toEqual([]);
    // And nothing leaked in EC2 (deleted, or at least on its way).
    const left = await raw.send(
      new DescribeVolumesCommand({ Filters: [{ Name: `tag:${TAG_DATASET}`, Values: [datasetId] }] }),
    );
    expect((left.Volumes ?? []).filter((v) => v.State !== 'deleting' && v.State !== 'deleted')).toEqual([]);
  } finally {
    ec2.destroy();
    raw.destroy();
  }
});
