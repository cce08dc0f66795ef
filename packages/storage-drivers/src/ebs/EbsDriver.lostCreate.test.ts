/**
 * Review T1 "not checked" (session 18): a CreateVolume whose answers were all lost, while DescribeVolumes does not
 * show the new volume yet (EC2 is eventually consistent), fails; the agent's next createVolume of the dataset used
 * a new ClientToken and create-token tag, so EC2 made a second volume of the same dataset, which nothing destroys.
 * Now the driver keeps the token of a create whose outcome it does not know and uses it again for the next create
 * of the same dataset with the same parameters: EC2's ClientToken idempotency answers with the first volume, and
 * the driver first looks for it by its token tag (which is what saves emulators such as moto, which ignore tokens).
 */
import { randomUUID } from 'node:crypto';
import {
  DescribeVolumesCommand,
  type DescribeVolumesCommandInput,
  type DescribeVolumesCommandOutput,
  type EC2Client,
} from '@aws-sdk/client-ec2';
import { EbsDriver, TAG_CREATE_TOKEN, TAG_DATASET } from './EbsDriver';
import { GiB } from './profiles';
import { motoClient, motoConfig, noDevice, runInstances, startMoto, type MotoServer } from './motoSupport';

jest.setTimeout(120_000);

let moto: MotoServer;
let raw: EC2Client;
let instance: string;

beforeAll(async () => {
  moto = await startMoto();
  raw = motoClient(moto.endpoint);
  [instance] = await runInstances(raw, 1);
});

afterAll(async () => {
  raw?.destroy();
  await moto?.stop();
});

it('a create whose answers were lost and whose volume is not yet listed makes no second volume on the retry', async () => {
  const ec2 = motoClient(moto.endpoint);
  let outage = true;
  ec2.middlewareStack.add(
    (next, context) => async (args) => {
      const input = (args as { input: DescribeVolumesCommandInput }).input;
      if (outage && context.commandName === 'CreateVolumeCommand') {
        await next(args); // it reaches EC2; every answer is lost
        throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
      }
      const result = await next(args);
      // EC2 lags: a search by the create token does not see the new volume yet.
      if (outage && context.commandName === 'DescribeVolumesCommand')
        if ((input.Filters ?? []).some((f) => f.Name === `tag:${TAG_CREATE_TOKEN}`))
          (result.output as DescribeVolumesCommandOutput).Volumes = [];
      return result;
    },
    { step: 'initialize', name: 'lostCreate' },
  );
  const d = new EbsDriver({
    config: motoConfig(moto, instance),
    ec2,
    host: noDevice,
    timing: { maxAttempts: 1, pollBaseMs: 10, pollMaxMs: 100, stateTimeoutMs: 20_000 },
  });
  const datasetId = randomUUID();
  const ofDataset = async () =>
    (
      (await raw.send(new DescribeVolumesCommand({ Filters: [{ Name: `tag:${TAG_DATASET}`, Values: [datasetId] }] })))
        .Volumes ?? []
    ).filter((v) => v.State !== 'deleting' && v.State !== 'deleted');
  try {
    await expect(d.createVolume(datasetId, GiB, { profile: 'silver' })).rejects.toMatchObject({
      code: 'BACKEND_ERROR',
    });
    expect(await ofDataset()).toHaveLength(1);
    outage = false;
    // The agent's next try for the same dataset.
    const v = await d.createVolume(datasetId, GiB, { profile: 'silver' });
    const left = await ofDataset();
    expect(left.map((x) => x.VolumeId)).toEqual([v.blockdeviceId]);
    // Another dataset, or another size, is a new create.
    const w = await d.createVolume(datasetId, 2 * GiB, { profile: 'silver' });
    expect(w.blockdeviceId).not.toBe(v.blockdeviceId);
  } finally {
    ec2.destroy();
  }
});
