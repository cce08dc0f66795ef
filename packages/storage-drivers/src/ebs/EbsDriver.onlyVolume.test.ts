/**
 * Session 19 (after 433bf78): the agent's creates (onlyVolume) must not make a second volume of a dataset when an
 * agent restart falls between a CreateVolume whose answers were all lost and its retry (the token was kept in
 * memory only), nor when two hosts create the same dataset's volume at once. Now an onlyVolume create derives its
 * ClientToken from the create's parameters and a generation: the first generation not known dead is looked up by
 * its token tag and else sent again, so EC2's ClientToken idempotency answers with the first volume; a token whose
 * volume is gone (destroyed, or an answer replaying a long-gone one) moves on to the next generation.
 * moto ignores ClientToken: addAwsClientTokens adds EC2's documented behaviour (same token and parameters -> the
 * first answer again; other parameters -> IdempotentParameterMismatch).
 */
import { randomUUID } from 'node:crypto';
import {
  CreateVolumeCommand,
  DescribeVolumesCommand,
  type DescribeVolumesCommandInput,
  type DescribeVolumesCommandOutput,
  type EC2Client,
} from '@aws-sdk/client-ec2';
import { EbsDriver, onlyVolumeToken, TAG_CREATE_TOKEN, TAG_DATASET, type EbsDriverOptions } from './EbsDriver';
import { GiB } from './profiles';
import {
  addAwsClientTokens,
  motoClient,
  motoConfig,
  noDevice,
  runInstances,
  startMoto,
  type ClientTokenMemory,
  type MotoServer,
} from './motoSupport';

jest.setTimeout(120_000);

let moto: MotoServer;
let raw: EC2Client;
let instance: string;
const clients: EC2Client[] = [];
/** The simulated EC2's memory of ClientTokens, shared by every client of this file. */
const tokens: ClientTokenMemory = new Map();

beforeAll(async () => {
  moto = await startMoto();
  raw = motoClient(moto.endpoint);
  [instance] = await runInstances(raw, 1);
});

afterAll(async () => {
  for (const c of clients) c.destroy();
  raw?.destroy();
  await moto?.stop();
});

/** EC2 with ClientToken idempotency; `lost` loses every CreateVolume answer and hides token searches (lag). */
function ec2Client(state: { lost: boolean } = { lost: false }): EC2Client {
  const ec2 = motoClient(moto.endpoint);
  clients.push(ec2);
  addAwsClientTokens(ec2, tokens);
  ec2.middlewareStack.add(
    (next, context) => async (args) => {
      const input = (args as { input: DescribeVolumesCommandInput }).input;
      if (state.lost && context.commandName === 'CreateVolumeCommand') {
        await next(args); // it reaches EC2; every answer is lost
        throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
      }
      const result = await next(args);
      if (state.lost && context.commandName === 'DescribeVolumesCommand')
        if ((input.Filters ?? []).some((f) => f.Name === `tag:${TAG_CREATE_TOKEN}`))
          (result.output as DescribeVolumesCommandOutput).Volumes = [];
      return result;
    },
    { step: 'initialize', name: `lostCreate${Math.random()}` },
  );
  return ec2;
}

function driver(clusterId: string, ec2: EC2Client, extra: Partial<EbsDriverOptions> = {}): EbsDriver {
  return new EbsDriver({
    config: motoConfig(moto, instance, clusterId),
    ec2,
    host: noDevice,
    timing: { maxAttempts: 1, pollBaseMs: 10, pollMaxMs: 100, stateTimeoutMs: 20_000, listingLagMs: 1_000 },
    ...extra,
  });
}

async function volumesOf(datasetId: string): Promise<string[]> {
  const out = await raw.send(
    new DescribeVolumesCommand({ Filters: [{ Name: `tag:${TAG_DATASET}`, Values: [datasetId] }] }),
  );
  return (out.Volumes ?? [])
    .filter((v) => v.State !== 'deleting' && v.State !== 'deleted')
    .map((v) => v.VolumeId ?? '')
    .sort();
}

describe('EbsDriver onlyVolume creates: one volume per dataset across restarts and hosts', () => {
  it('an agent restart between a lost create and its retry makes no second volume, EC2 still lagging', async () => {
    const clusterId = randomUUID();
    const datasetId = randomUUID();
    const state = { lost: true };
    const before = driver(clusterId, ec2Client(state));
    await expect(before.createVolume(datasetId, GiB, { profile: 'silver', onlyVolume: true })).rejects.toMatchObject({
      code: 'BACKEND_ERROR',
    });
    const first = await volumesOf(datasetId);
    expect(first).toHaveLength(1);
    // The agent is restarted (a new driver, nothing in memory); the token search still lags, answers arrive.
    const lagging = { lost: false };
    const ec2 = ec2Client(lagging);
    ec2.middlewareStack.add(
      (next, context) => async (args) => {
        const result = await next(args);
        const input = (args as { input: DescribeVolumesCommandInput }).input;
        if (context.commandName === 'DescribeVolumesCommand')
          if ((input.Filters ?? []).some((f) => f.Name === `tag:${TAG_CREATE_TOKEN}`))
            (result.output as DescribeVolumesCommandOutput).Volumes = [];
        return result;
      },
      { step: 'initialize', name: 'stillLagging' },
    );
    const after = driver(clusterId, ec2);
    const v = await after.createVolume(datasetId, GiB, { profile: 'silver', onlyVolume: true });
    expect(await volumesOf(datasetId)).toEqual(first);
    expect(v.blockdeviceId).toBe(first[0]);
  });

  it('two hosts creating the same dataset’s volume at once get one volume', async () => {
    const clusterId = randomUUID();
    const datasetId = randomUUID();
    const [a, b] = [driver(clusterId, ec2Client()), driver(clusterId, ec2Client())];
    const [va, vb] = await Promise.all([
      a.createVolume(datasetId, 2 * GiB, { onlyVolume: true }),
      b.createVolume(datasetId, 2 * GiB, { onlyVolume: true }),
    ]);
    expect(va.blockdeviceId).toBe(vb.blockdeviceId);
    expect(await volumesOf(datasetId)).toEqual([va.blockdeviceId]);
  });

  it('the volume of a found token is adopted without a create; other parameters are another create', async () => {
    const clusterId = randomUUID();
    const datasetId = randomUUID();
    const d = driver(clusterId, ec2Client());
    const v = await d.createVolume(datasetId, GiB, { onlyVolume: true });
    const again = await driver(clusterId, ec2Client()).createVolume(datasetId, GiB, { onlyVolume: true });
    expect(again.blockdeviceId).toBe(v.blockdeviceId);
    const bigger = await d.createVolume(datasetId, 2 * GiB, { onlyVolume: true });
    expect(bigger.blockdeviceId).not.toBe(v.blockdeviceId);
    // Without onlyVolume a create always makes a new volume (the contract).
    const plain = await d.createVolume(datasetId, GiB);
    expect(plain.blockdeviceId).not.toBe(v.blockdeviceId);
  });

  it('after its volume was destroyed, the dataset gets a new volume (the used token is not answered with the dead one)', async () => {
    const clusterId = randomUUID();
    const datasetId = randomUUID();
    const d = driver(clusterId, ec2Client());
    const v = await d.createVolume(datasetId, GiB, { onlyVolume: true });
    await d.destroyVolume(v.blockdeviceId);
    const w = await d.createVolume(datasetId, GiB, { onlyVolume: true });
    expect(w.blockdeviceId).not.toBe(v.blockdeviceId);
    expect(await volumesOf(datasetId)).toEqual([w.blockdeviceId]);
    // Another process (an hour later: nothing lists the dead volumes, EC2 replays an old answer) does the same.
    await d.destroyVolume(w.blockdeviceId);
    const later = driver(clusterId, ec2Client(), { now: () => Date.now() + 3600_000 });
    const x = await later.createVolume(datasetId, GiB, { onlyVolume: true });
    expect([v.blockdeviceId, w.blockdeviceId]).not.toContain(x.blockdeviceId);
    expect(await volumesOf(datasetId)).toEqual([x.blockdeviceId]);
  });

  it('a token EC2 knows with other parameters (IdempotentParameterMismatch) moves on to the next generation', async () => {
    const clusterId = randomUUID();
    const datasetId = randomUUID();
    const d = driver(clusterId, ec2Client());
    // Someone used generation 0's token for another request (say, another version of this driver).
    const config = motoConfig(moto, instance, clusterId);
    const token = onlyVolumeToken(config, { datasetId, sizeGiB: 1 }, 0);
    const ec2 = ec2Client();
    await ec2.send(
      new CreateVolumeCommand({ AvailabilityZone: config.zone, Size: 3, VolumeType: 'gp3', ClientToken: token }),
    );
    const v = await d.createVolume(datasetId, GiB, { onlyVolume: true });
    expect(await volumesOf(datasetId)).toEqual([v.blockdeviceId]);
  });

  it('with this host’s clock an hour ahead of EC2’s, a new volume EC2 lists late is not taken for a replayed dead one', async () => {
    const clusterId = randomUUID();
    const datasetId = randomUUID();
    const ec2 = ec2Client();
    // EC2 lags: the new volume is missing from DescribeVolumes for its first 300 ms.
    const madeAt = new Map<string, number>();
    ec2.middlewareStack.add(
      (next, context) => async (args) => {
        const result = await next(args);
        if (context.commandName === 'CreateVolumeCommand') {
          const id = (result.output as { VolumeId?: string }).VolumeId;
          if (id !== undefined && !madeAt.has(id)) madeAt.set(id, Date.now());
        }
        if (context.commandName === 'DescribeVolumesCommand') {
          const out = result.output as DescribeVolumesCommandOutput;
          out.Volumes = (out.Volumes ?? []).filter((v) => Date.now() - (madeAt.get(v.VolumeId ?? '') ?? 0) > 300);
        }
        return result;
      },
      { step: 'initialize', name: 'listingLag' },
    );
    const d = driver(clusterId, ec2, { now: () => Date.now() + 3600_000 });
    const v = await d.createVolume(datasetId, GiB, { onlyVolume: true });
    expect(await volumesOf(datasetId)).toEqual([v.blockdeviceId]);
  });
});
