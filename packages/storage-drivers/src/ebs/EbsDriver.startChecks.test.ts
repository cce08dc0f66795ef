/**
 * Review T1 S4 (session 18): an agent.yml whose `zone` is not the instance's zone, or whose `instance_id` names no
 * instance, was not caught at start: the agent ran, created volumes, and then every attach failed (AWS refuses a
 * volume from another zone; moto even attaches across zones) or it retried "no instance i-…" for ever. The
 * agent learns its instance id at start through computeInstanceId, so that is where one DescribeInstances
 * checks both. A transient EC2 failure does not stop the agent (the check is skipped, with a warning).
 */
import { randomUUID } from 'node:crypto';
import type { EC2Client } from '@aws-sdk/client-ec2';
import { EbsDriver } from './EbsDriver';
import {
  addFault,
  awsError,
  motoClient,
  noDevice,
  REGION,
  runInstances,
  startMoto,
  ZONE,
  type MotoServer,
} from './motoSupport';

jest.setTimeout(120_000);

let moto: MotoServer;
let raw: EC2Client;
let instance: string;
const clients: EC2Client[] = [];

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

function driver(
  config: { zone: string; instance_id?: string },
  fetchInstanceId?: () => Promise<string>,
  sleeps: number[] = [],
) {
  const ec2 = motoClient(moto.endpoint);
  clients.push(ec2);
  const d = new EbsDriver({
    config: { backend: 'aws', region: REGION, cluster_id: randomUUID(), endpoint: moto.endpoint, ...config },
    ec2,
    host: noDevice,
    timing: { retryBaseMs: 5, retryMaxMs: 20, maxAttempts: 2 },
    ...(fetchInstanceId === undefined ? {} : { fetchInstanceId }),
    sleep: async (ms) => void sleeps.push(ms),
  });
  return { d, ec2 };
}

describe('EbsDriver.computeInstanceId checks the configured place once', () => {
  it('the right zone and instance: the id', async () => {
    const { d } = driver({ zone: ZONE, instance_id: instance });
    expect(await d.computeInstanceId()).toBe(instance);
  });

  it('a zone that is not the instance’s zone is refused, naming both zones and the setting', async () => {
    const { d } = driver({ zone: 'us-east-1b', instance_id: instance });
    const e = await d.computeInstanceId().catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'BACKEND_ERROR' });
    expect(String((e as Error).message)).toMatch(/dataset\.zone/);
    expect(String((e as Error).message)).toContain('us-east-1b');
    expect(String((e as Error).message)).toContain(ZONE);
    expect(String((e as Error).message)).toContain(instance);
  });

  it('an instance_id naming no instance is refused at once, naming it and the setting', async () => {
    const sleeps: number[] = [];
    const { d } = driver({ zone: ZONE, instance_id: 'i-0000000000000dead' }, undefined, sleeps);
    const e = await d.computeInstanceId().catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'BACKEND_ERROR' });
    expect(String((e as Error).message)).toMatch(/dataset\.instance_id/);
    expect(String((e as Error).message)).toContain('i-0000000000000dead');
    expect(sleeps).toEqual([]);
  });

  it('a fresh instance EC2 briefly answers NotFound for (eventual consistency): the IMDS id is asked again (review FR F9)', async () => {
    const sleeps: number[] = [];
    const { d, ec2 } = driver({ zone: ZONE }, async () => instance, sleeps);
    const fault = addFault(ec2, {
      command: 'DescribeInstancesCommand',
      times: 2,
      error: () => awsError('InvalidInstanceID.NotFound', `The instance ID '${instance}' does not exist`),
    });
    expect(await d.computeInstanceId()).toBe(instance);
    // Two NotFound, then moto's real answer.
    expect(fault).toEqual({ injected: 2, calls: 3 });
    expect(sleeps).toHaveLength(2);
  });

  it('an IMDS id EC2 keeps not knowing is refused after about 30 s, pointing at dataset.region (review FR F9)', async () => {
    const sleeps: number[] = [];
    const { d } = driver({ zone: ZONE }, async () => 'i-0000000000000beef', sleeps);
    const e = await d.computeInstanceId().catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'BACKEND_ERROR' });
    expect(String((e as Error).message)).toMatch(/dataset\.region/);
    expect(String((e as Error).message)).toContain('i-0000000000000beef');
    const waited = sleeps.reduce((a, b) => a + b, 0);
    expect(waited).toBeGreaterThanOrEqual(25_000);
    expect(waited).toBeLessThanOrEqual(35_000);
  });

  it('the id from the instance metadata service is checked too', async () => {
    const { d } = driver({ zone: 'us-east-1b' }, async () => instance);
    await expect(d.computeInstanceId()).rejects.toThrow(/dataset\.zone/);
  });

  it('EC2 not answering does not stop the start: the check is skipped', async () => {
    const { d, ec2 } = driver({ zone: 'us-east-1b', instance_id: instance });
    addFault(ec2, {
      command: 'DescribeInstancesCommand',
      times: 10,
      error: () => awsError('ServiceUnavailable', 'try later', 503),
    });
    expect(await d.computeInstanceId()).toBe(instance);
  });
});
