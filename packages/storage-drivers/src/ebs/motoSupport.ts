/**
 * Test support (import only from tests): a moto EC2 server on a free loopback
 * port, EC2 instances in it, middleware that adds AWS behaviour moto lacks or
 * injects faults, and a host-side double that serves attached volumes as loop
 * devices.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  DescribeImagesCommand,
  DescribeVolumesCommand,
  EC2Client,
  EC2ServiceException,
  RunInstancesCommand,
  type CreateSnapshotCommandOutput,
  type DescribeVolumesCommandOutput,
} from '@aws-sdk/client-ec2';
import { isDeviceBusy } from '../blockdev';
import { execFileExec } from '../exec';
import { findLoopDevices } from '../losetup';
import type { EbsHost } from './devices';
import type { EbsTiming } from './EbsDriver';
import type { EbsDatasetConfig } from './options';
import { GiB } from './profiles';

export const REGION = 'us-east-1';
export const ZONE = 'us-east-1a';

/** Driver timings short enough for tests against moto. */
export const FAST_EBS_TIMING: Partial<EbsTiming> = {
  retryBaseMs: 5,
  retryMaxMs: 50,
  pollBaseMs: 10,
  pollMaxMs: 100,
  stateTimeoutMs: 20_000,
  deviceTimeoutMs: 10_000,
};

/** A host side for tests that do not need a real device. */
export const noDevice: EbsHost = {
  findDevice: async () => undefined,
  waitForDevice: async () => '/dev/null',
  waitForDeviceGone: async () => undefined,
  isBusy: async () => false,
};

/** The agent.yml dataset section of `instance` in ZONE of this moto server, for a new cluster unless one is given. */
export function motoConfig(moto: MotoServer, instance: string, clusterId: string = randomUUID()): EbsDatasetConfig {
  return {
    backend: 'aws',
    region: REGION,
    zone: ZONE,
    cluster_id: clusterId,
    instance_id: instance,
    endpoint: moto.endpoint,
  };
}
const REPO_ROOT = path.resolve(__dirname, '../../../..');

export interface MotoServer {
  readonly endpoint: string;
  readonly version: string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function run(cmd: string, args: string[]): Promise<string> {
  const r = await execFileExec(cmd, args);
  if (r.exitCode !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.exitCode}: ${r.stderr}`);
  return r.stdout;
}

/**
 * moto's default images are ~1,300 AMIs in us-east-1 (amis.json plus latest_amis/): building them costs each EC2
 * backend ~1 s, and every unfiltered DescribeImages (runInstances below, the e2e tests' own) serializes all of them,
 * 4-16 s a call (moto 5.2.5). The tests need one image: moto's first default one, the one they picked before.
 */
const TEST_AMIS = [
  {
    ami_id: 'ami-03cf127a',
    state: 'available',
    public: true,
    owner_id: '801119661308',
    image_location: 'amazon/getting-started',
    sriov: 'simple',
    root_device_type: 'ebs',
    root_device_name: '/dev/sda1',
    description: 'Microsoft Windows Server 2016 Nano Locale English AMI provided by Amazon',
    image_type: 'machine',
    platform: 'windows',
    architecture: 'x86_64',
    name: 'Windows_Server-2016-English-Nano-Base-2017.10.13',
    virtualization_type: 'hvm',
    hypervisor: 'xen',
  },
];

/** Installs moto if needed (scripts/moto.sh) and starts moto_server on 127.0.0.1 only. */
export async function startMoto(): Promise<MotoServer> {
  const serverPath = (await run('bash', [path.join(REPO_ROOT, 'scripts/moto.sh')])).trim().split('\n').pop() ?? '';
  const python = path.join(path.dirname(serverPath), 'python');
  // From the installed metadata: `import moto` costs as much as the server's own start (~1-2 s CPU, far more at load).
  const version = (await run(python, ['-c', 'import importlib.metadata as m; print(m.version("moto"))'])).trim();
  const amiDir = await fs.mkdtemp(path.join(os.tmpdir(), 'flocker-moto-'));
  const amis = path.join(amiDir, 'amis.json');
  await fs.writeFile(amis, JSON.stringify(TEST_AMIS));
  const removeAmis = () => fs.rm(amiDir, { recursive: true, force: true });
  for (let tries = 0; ; tries++) {
    const port = await freePort();
    const child: ChildProcess = spawn(serverPath, ['-H', '127.0.0.1', '-p', String(port)], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, MOTO_AMIS_PATH: amis },
    });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const endpoint = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 30_000;
    let up = false;
    while (Date.now() < deadline && child.exitCode === null) {
      try {
        await fetch(`${endpoint}/moto-api/`);
        up = true;
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    if (up) {
      return {
        endpoint,
        version,
        stop: async () => {
          if (child.exitCode === null) child.kill('SIGTERM');
          await exited;
          await removeAmis();
        },
      };
    }
    child.kill('SIGKILL');
    await exited;
    // The port may have been taken between probing and binding; try another.
    if (tries >= 2) {
      await removeAmis();
      throw new Error(`moto_server did not start: ${stderr.slice(-2000)}`);
    }
  }
}

export function motoClient(endpoint: string): EC2Client {
  return new EC2Client({
    region: REGION,
    endpoint,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    maxAttempts: 1,
  });
}

/** Starts n instances in ZONE; returns their ids. */
export async function runInstances(ec2: EC2Client, n: number): Promise<string[]> {
  const images = await ec2.send(new DescribeImagesCommand({}));
  const imageId = images.Images?.[0]?.ImageId;
  if (imageId === undefined) throw new Error('moto offers no AMI');
  const r = await ec2.send(
    new RunInstancesCommand({
      ImageId: imageId,
      MinCount: n,
      MaxCount: n,
      InstanceType: 't3.micro',
      Placement: { AvailabilityZone: ZONE },
    }),
  );
  return (r.Instances ?? []).map((i) => i.InstanceId ?? '');
}

export function awsError(name: string, message: string, httpStatusCode = 400): EC2ServiceException {
  return new EC2ServiceException({
    name,
    $fault: httpStatusCode >= 500 ? 'server' : 'client',
    $metadata: { httpStatusCode },
    message,
  });
}

/** One queue shared by every client given the attach rule: EC2 decides attaches one at a time. */
class Serial {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.catch(() => undefined).then(task);
    this.tail = result.catch(() => undefined);
    return result;
  }
}
const attachQueue = new Serial();

function inputOf(args: unknown): Record<string, unknown> {
  const input = (args as { input?: unknown }).input;
  return typeof input === 'object' && input !== null ? (input as Record<string, unknown>) : {};
}

/** What EC2 remembers of each ClientToken of CreateVolume (one map per simulated EC2, shared by its clients). */
export type ClientTokenMemory = Map<string, { request: string; output: unknown }>;
const tokenQueue = new Serial();

/**
 * EC2's ClientToken idempotency for CreateVolume, which moto ignores: the first request with a token creates,
 * every later one with the same token and parameters gets that first answer again (whatever became of the volume
 * since), and one with other parameters IdempotentParameterMismatch. Innermost (priority low), so a fault
 * middleware that loses the answer still lets EC2 remember the token.
 */
export function addAwsClientTokens(ec2: EC2Client, memory: ClientTokenMemory): void {
  ec2.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName !== 'CreateVolumeCommand') return next(args);
      const { ClientToken: token, ...rest } = inputOf(args);
      if (typeof token !== 'string') return next(args);
      const request = JSON.stringify(rest);
      return tokenQueue.run(async () => {
        const seen = memory.get(token);
        if (seen !== undefined) {
          if (seen.request !== request)
            throw awsError('IdempotentParameterMismatch', `Client token ${token} was used with other parameters`);
          return { output: structuredClone(seen.output), response: {} } as Awaited<ReturnType<typeof next>>;
        }
        const result = await next(args);
        memory.set(token, { request, output: structuredClone(result.output) });
        return result;
      });
    },
    { step: 'initialize', priority: 'low', name: `flockerAwsClientTokens${Math.random()}` },
  );
}

/**
 * AWS refuses AttachVolume for a volume that is attached (VolumeInUse); moto
 * 5.x silently replaces the attachment. This middleware adds AWS's rule, one
 * attach at a time across all clients, so races resolve as on AWS.
 */
export function addAwsAttachRule(ec2: EC2Client): void {
  ec2.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName !== 'AttachVolumeCommand') return next(args);
      const volumeId = String(inputOf(args).VolumeId);
      return attachQueue.run(async () => {
        const current = await ec2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] })).catch(() => undefined);
        const att = current?.Volumes?.[0]?.Attachments?.find((a) => a.State !== 'detached');
        if (att !== undefined) throw awsError('VolumeInUse', `${volumeId} is already attached to an instance`);
        return next(args);
      });
    },
    { step: 'initialize', name: 'flockerTestAwsAttachRule' },
  );
}

/**
 * AWS pages DescribeVolumes by MaxResults/NextToken; moto 5.x ignores both
 * and answers everything. This slices moto's (stably ordered) answer the way
 * AWS pages, and counts the pages served.
 */
export function addAwsPagination(ec2: EC2Client): { pages: number[] } {
  const seen = { pages: [] as number[] };
  ec2.middlewareStack.add(
    (next, context) => async (args) => {
      const input = inputOf(args);
      if (context.commandName !== 'DescribeVolumesCommand' || typeof input.MaxResults !== 'number') return next(args);
      const offset = typeof input.NextToken === 'string' ? Number(input.NextToken) : 0;
      const result = await next(args);
      const output = result.output as DescribeVolumesCommandOutput;
      const all = output.Volumes ?? [];
      const end = offset + input.MaxResults;
      output.Volumes = all.slice(offset, end);
      output.NextToken = end < all.length ? String(end) : undefined;
      seen.pages.push(output.Volumes.length);
      return result;
    },
    { step: 'initialize', name: 'flockerTestAwsPagination' },
  );
  return seen;
}

/** Makes the matching calls fail with an injected error instead of (or after) reaching moto. */
export function addFault(
  ec2: EC2Client,
  options: {
    command?: string;
    times: number;
    /** Without an error, the call goes on to moto after `when` ran (to stage a race). */
    error?: () => unknown;
    afterSending?: boolean;
    when?: (input: Record<string, unknown>) => Promise<void> | void;
  },
): { injected: number; calls: number } {
  const stats = { injected: 0, calls: 0 };
  ec2.middlewareStack.add(
    (next, context) => async (args) => {
      if (options.command !== undefined && context.commandName !== options.command) return next(args);
      stats.calls++;
      if (stats.injected >= options.times) return next(args);
      stats.injected++;
      await options.when?.(inputOf(args));
      if (options.error === undefined) return next(args);
      if (options.afterSending === true) await next(args); // the call takes effect, its answer is lost
      throw options.error();
    },
    { step: 'initialize', name: `flockerTestFault${Math.random()}` },
  );
  return stats;
}

/**
 * The host side of EBS for tests: moto attaches nothing to this machine, so
 * each volume gets a sparse file (its "EBS storage", sized as EC2 says) that
 * is served as a loop device on whichever simulated instance it is attached
 * to. One loop device per volume at a time, as EBS moves a volume's device
 * from one instance to another.
 */
export class LoopbackEbsHosts {
  private readonly loops = new Map<string, { instanceId: string; device: string }>();
  private readonly queue = new Serial();

  constructor(
    private readonly root: string,
    private readonly ec2: EC2Client,
  ) {}

  /**
   * EBS snapshots hold data; moto's hold none. Given to a driver's client, this copies the
   * volume's file (sparse) to `<snap-id>.img` when CreateSnapshot succeeds (the point in time
   * is the call, as on EBS); a volume created with that SnapshotId starts as a copy of it.
   */
  addSnapshotData(ec2: EC2Client): void {
    ec2.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName !== 'CreateSnapshotCommand') return next(args);
        const volumeId = String(inputOf(args).VolumeId);
        return this.queue.run(async () => {
          const result = await next(args);
          const snapshotId = (result.output as CreateSnapshotCommandOutput).SnapshotId;
          const file = path.join(this.root, `${volumeId}.img`);
          const exists = await fs.access(file).then(
            () => true,
            () => false,
          );
          if (snapshotId !== undefined && exists)
            await run('cp', ['--sparse=always', '--', file, path.join(this.root, `${snapshotId}.img`)]);
          return result;
        });
      },
      { step: 'initialize', name: 'flockerTestEbsSnapshotData' },
    );
  }

  hostFor(instanceId: string): EbsHost {
    return {
      findDevice: (volumeId) => this.queue.run(async () => this.current(volumeId, instanceId)),
      waitForDevice: (volumeId) => this.queue.run(() => this.serve(volumeId, instanceId)),
      waitForDeviceGone: (volumeId) => this.queue.run(() => this.release(volumeId, instanceId)),
      isBusy: (device) => isDeviceBusy(device),
    };
  }

  private current(volumeId: string, instanceId: string): string | undefined {
    const loop = this.loops.get(volumeId);
    return loop?.instanceId === instanceId ? loop.device : undefined;
  }

  private async serve(volumeId: string, instanceId: string): Promise<string> {
    const file = path.join(this.root, `${volumeId}.img`);
    const described = await this.ec2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }));
    const size = (described.Volumes?.[0]?.Size ?? 0) * GiB;
    const fromSnapshot = described.Volumes?.[0]?.SnapshotId;
    const snapshotFile = path.join(this.root, `${fromSnapshot}.img`);
    const first = await fs.access(file).then(
      () => false,
      () => true,
    );
    if (
      first &&
      fromSnapshot &&
      (await fs.access(snapshotFile).then(
        () => true,
        () => false,
      ))
    )
      await run('cp', ['--sparse=always', '--', snapshotFile, file]);
    const handle = await fs.open(file, 'a');
    try {
      if ((await handle.stat()).size < size) await handle.truncate(size);
    } finally {
      await handle.close();
    }
    const loop = this.loops.get(volumeId);
    if (loop !== undefined && loop.instanceId !== instanceId) await this.release(volumeId, loop.instanceId); // force-detached elsewhere
    const existing = this.loops.get(volumeId);
    if (existing !== undefined) {
      await run('losetup', ['-c', existing.device]);
      return existing.device;
    }
    const device = (await run('losetup', ['--find', '--show', file])).trim();
    this.loops.set(volumeId, { instanceId, device });
    return device;
  }

  private async release(volumeId: string, instanceId: string): Promise<void> {
    const loop = this.loops.get(volumeId);
    if (loop === undefined || loop.instanceId !== instanceId) return;
    await run('losetup', ['-d', loop.device]);
    this.loops.delete(volumeId);
  }

  /** Detaches every loop device over our files (also ones a failed test left). */
  async cleanup(): Promise<void> {
    for (const name of await fs.readdir(this.root).catch(() => [])) {
      for (const dev of await findLoopDevices(execFileExec, path.join(this.root, name)).catch(() => [])) {
        await execFileExec('losetup', ['-d', dev]);
      }
    }
    this.loops.clear();
    await fs.rm(this.root, { recursive: true, force: true });
  }
}
