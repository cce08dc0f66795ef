/**
 * Review T1 S4 (session 18): a real dataset agent on `backend: aws` (moto's EC2 server as the endpoint) with an
 * agent.yml whose `zone` is not the instance's zone, or whose `instance_id` names no instance. The agent used to
 * start, report itself healthy, create the user's first volume and then never mount it: on AWS every attach fails
 * (InvalidVolume.ZoneMismatch; moto even attaches across zones), or it retried "no instance i-…" for ever, every
 * 2 s. Now the driver checks its instance with one DescribeInstances when the agent learns its id at start: the
 * agent refuses to start and says which setting is wrong (as it does for a zone outside the region).
 */
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startMoto, type MotoServer } from '@flocker/storage-drivers/testing';
import { LocalAgentBed } from './localAgents';

jest.setTimeout(180_000);

let moto: MotoServer;
let bed: LocalAgentBed;

/** One EC2 query-API call to moto (it checks no signature, only reads the region from the header). */
async function ec2(params: Record<string, string>): Promise<string> {
  const res = await fetch(moto.endpoint, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/x-www-form-urlencoded',
      Authorization:
        'AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0',
    },
    body: new URLSearchParams({ Version: '2016-11-15', ...params }).toString(),
  });
  return res.text();
}

async function instanceIn(zone: string): Promise<string> {
  const image = /<imageId>([^<]+)<\/imageId>/.exec(await ec2({ Action: 'DescribeImages' }))?.[1];
  if (image === undefined) throw new Error('moto offers no AMI');
  const run = await ec2({
    Action: 'RunInstances',
    ImageId: image,
    MinCount: '1',
    MaxCount: '1',
    InstanceType: 't3.micro',
    'Placement.AvailabilityZone': zone,
  });
  const id = /<instanceId>([^<]+)<\/instanceId>/.exec(run)?.[1];
  if (id === undefined) throw new Error(`RunInstances: ${run.slice(0, 500)}`);
  return id;
}

function writeAwsConfig(name: string, dataset: { zone: string; instance_id: string }): void {
  const node = join(bed.dir, name);
  const section = {
    backend: 'aws',
    region: 'us-east-1',
    cluster_id: '0f6c0e1e-5b5c-4c55-9a86-2f3b0c2d7a11',
    access_key_id: 'testing',
    secret_access_key: 'testing',
    endpoint: moto.endpoint,
    ...dataset,
  };
  writeFileSync(
    bed.configPath(name),
    [
      'version: 1',
      `control-service: {hostname: 127.0.0.1, port: ${bed.control.port}}`,
      `dataset: ${JSON.stringify(section)}`,
      `node: {state_dir: ${join(node, 'state')}, mount_root: ${join(node, 'mnt')}, era_file: ${join(node, 'era')}}`,
      'agent: {resync_interval_seconds: 2, backoff_initial_seconds: 0.2, backoff_max_seconds: 2}',
      'metrics: {dataset_agent_port: 0}',
      '',
    ].join('\n'),
  );
}

/** Starts the agent and waits up to 30 s for it to exit; answers its exit code (null: still running) and log. */
async function startAndWatch(name: string): Promise<{ code: number | null; log: string }> {
  const a = bed.startAgent(name, { AWS_EC2_METADATA_DISABLED: 'true' });
  const exit = await Promise.race([a.exited, new Promise<null>((r) => setTimeout(() => r(null), 30_000))]);
  return { code: exit === null ? null : exit.code, log: readFileSync(join(bed.dir, `${name}.log`), 'utf8') };
}

beforeAll(async () => {
  moto = await startMoto();
});

afterAll(async () => {
  await moto?.stop();
});

beforeEach(async () => {
  bed = await LocalAgentBed.start('flocker-t1-ebs-start-');
});

afterEach(async () => {
  await bed?.close();
});

describe('dataset agent on EBS: agent.yml that names the wrong place is refused at start', () => {
  it('a zone that is not the instance’s zone', async () => {
    const instance = await instanceIn('us-east-1a');
    writeAwsConfig('wrongzone', { zone: 'us-east-1b', instance_id: instance });
    const { code, log } = await startAndWatch('wrongzone');
    expect(code).not.toBeNull();
    expect(code).not.toBe(0);
    expect(log).toMatch(/us-east-1a/);
    expect(log).toMatch(/zone/i);
  });

  it('an instance_id that names no instance', async () => {
    writeAwsConfig('noinstance', { zone: 'us-east-1a', instance_id: 'i-0000000000000dead' });
    const { code, log } = await startAndWatch('noinstance');
    expect(code).not.toBeNull();
    expect(code).not.toBe(0);
    expect(log).toMatch(/i-0000000000000dead/);
  });
});
