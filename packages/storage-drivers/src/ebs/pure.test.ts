/** The EBS driver's pure parts: profiles, error classes, backoff, config, IMDSv2. */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { isStorageError } from '../BlockDeviceApi';
import { awsErrorCode, isTransientAwsError, providerMessage } from './errors';
import { fetchInstanceIdFromImds } from './imds';
import { ebsDatasetConfigSchema } from './options';
import { volumeTypeForProfile } from './profiles';
import { pollUntil } from './retry';
import { awsError } from './motoSupport';
import { createEbsDriver } from '../index';
import { EbsDriver } from './EbsDriver';

describe('volumeTypeForProfile', () => {
  it.each([
    [undefined, 1, { VolumeType: 'gp3' }],
    ['silver', 500, { VolumeType: 'gp3' }],
    ['unknown', 10, { VolumeType: 'gp3' }],
    ['gold', 3, { VolumeType: 'gp3', Iops: 3000 }],
    ['gold', 4, { VolumeType: 'io2', Iops: 2000 }],
    ['GOLD', 100, { VolumeType: 'io2', Iops: 50_000 }],
    ['gold', 1000, { VolumeType: 'io2', Iops: 64_000 }],
    ['bronze', 124, { VolumeType: 'gp3' }],
    ['bronze', 125, { VolumeType: 'sc1' }],
  ])('%s at %i GiB → %o', (profile, gib, expected) => {
    expect(volumeTypeForProfile(profile, gib)).toEqual(expected);
  });
});

describe('AWS error classes', () => {
  it.each([
    'RequestLimitExceeded',
    'Throttling',
    'ThrottlingException',
    'InternalError',
    'ServiceUnavailable',
    'Unavailable',
  ])('%s is transient', (name) => {
    expect(isTransientAwsError(awsError(name, 'x'))).toBe(true);
  });

  it.each([
    'VolumeInUse',
    'IncorrectState',
    'InvalidVolume.NotFound',
    'UnauthorizedOperation',
    'InvalidParameterValue',
    'AuthFailure',
  ])('%s is permanent', (name) => {
    expect(isTransientAwsError(awsError(name, 'x', 400))).toBe(false);
  });

  it('treats any 5xx and 429 as transient, and network failures by errno, also wrapped', () => {
    expect(isTransientAwsError(awsError('Whatever', 'x', 502))).toBe(true);
    expect(isTransientAwsError(awsError('Whatever', 'x', 429))).toBe(true);
    expect(isTransientAwsError(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }))).toBe(true);
    expect(isTransientAwsError(Object.assign(new Error('fetch failed'), { cause: { code: 'ECONNREFUSED' } }))).toBe(
      true,
    );
    expect(isTransientAwsError(Object.assign(new Error('t'), { name: 'TimeoutError' }))).toBe(true);
    expect(isTransientAwsError(new Error('plain'))).toBe(false);
    expect(isTransientAwsError('string')).toBe(false);
    expect(isTransientAwsError(null)).toBe(false);
  });

  it('keeps the provider code and sentence', () => {
    expect(awsErrorCode(awsError('VolumeInUse', 'm'))).toBe('VolumeInUse');
    expect(awsErrorCode({ Code: 'IncorrectState', name: 'Error' })).toBe('IncorrectState');
    expect(providerMessage(awsError('VolumeInUse', 'vol-1 is already attached to an instance'))).toBe(
      'VolumeInUse: vol-1 is already attached to an instance',
    );
    expect(providerMessage(new Error('plain'))).toBe('plain');
  });
});

describe('backoff', () => {
  it('polls until a value, sleeping with backoff, and stops at the deadline', async () => {
    let clock = 0;
    const sleeps: number[] = [];
    const sleep = async (ms: number) => {
      sleeps.push(ms);
      clock += ms;
    };
    let n = 0;
    expect(
      await pollUntil(async () => (++n === 4 ? 'done' : undefined), {
        baseMs: 10,
        maxMs: 1000,
        timeoutMs: 10_000,
        what: 'x',
        sleep,
        now: () => clock,
        random: () => 0.999,
      }),
    ).toBe('done');
    expect(sleeps).toEqual([10, 20, 40]);
    clock = 0;
    sleeps.length = 0;
    await expect(
      pollUntil(async () => undefined, {
        baseMs: 10,
        maxMs: 50,
        timeoutMs: 200,
        what: 'the thing',
        sleep,
        now: () => clock,
        random: () => 0.999,
      }),
    ).rejects.toMatchObject({
      code: 'BACKEND_ERROR',
      message: 'timed out after 200 ms waiting for the thing',
    });
    expect(clock).toBe(200); // never sleeps past the deadline
  });
});

describe('ebsDatasetConfigSchema (agent.yml dataset: section)', () => {
  const base = { backend: 'aws', region: 'us-east-1', zone: 'us-east-1a', cluster_id: 'c1' };

  it('accepts the minimal form (default credential chain, instance id from IMDS) and the full form', () => {
    expect(ebsDatasetConfigSchema.parse(base)).toEqual(base);
    const full = {
      ...base,
      access_key_id: 'AKIA',
      secret_access_key: 's',
      session_token: 't',
      endpoint: 'http://127.0.0.1:5000',
      instance_id: 'i-0123456789abcdef0',
    };
    expect(ebsDatasetConfigSchema.parse(full)).toEqual(full);
    // Local Zones are zones of their parent region.
    expect(ebsDatasetConfigSchema.safeParse({ ...base, region: 'us-west-2', zone: 'us-west-2-lax-1a' }).success).toBe(
      true,
    );
  });

  it.each([
    [{ region: 'nowhere' }, 'region'],
    [{ zone: 'eu-west-1a' }, 'not in region'],
    [{ zone: 'us-east-1' }, 'zone'],
    [{ access_key_id: 'AKIA' }, 'together'],
    [{ secret_access_key: 's' }, 'together'],
    [{ session_token: 't' }, 'session_token'],
    [{ instance_id: 'node-1' }, 'instance_id'],
    [{ endpoint: 'not a url' }, 'endpoint'],
    [{ cluster_id: '' }, 'cluster_id'],
    [{ root_path: '/x' }, 'root_path'],
  ])('rejects %o', (patch, mention) => {
    const r = ebsDatasetConfigSchema.safeParse({ ...base, ...patch });
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error?.issues)).toContain(mention);
  });
});

describe('fetchInstanceIdFromImds (IMDSv2)', () => {
  let server: http.Server;
  let endpoint: string;
  let answer = 'i-0abc1234def567890';
  const requests: string[] = [];

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      requests.push(`${req.method} ${req.url}`);
      if (
        req.method === 'PUT' &&
        req.url === '/latest/api/token' &&
        req.headers['x-aws-ec2-metadata-token-ttl-seconds'] !== undefined
      ) {
        res.end('secret-token');
      } else if (req.method === 'GET' && req.url === '/latest/meta-data/instance-id') {
        // IMDSv2 only: without the session token, 401.
        if (req.headers['x-aws-ec2-metadata-token'] !== 'secret-token') {
          res.statusCode = 401;
          res.end();
        } else res.end(answer);
      } else {
        res.statusCode = 404;
        res.end();
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('gets a session token, then the instance id with it', async () => {
    requests.length = 0;
    expect(await fetchInstanceIdFromImds({ endpoint })).toBe('i-0abc1234def567890');
    expect(requests).toEqual(['PUT /latest/api/token', 'GET /latest/meta-data/instance-id']);
  });

  it('fails with BACKEND_ERROR naming the fix when IMDS is unreachable or answers nonsense', async () => {
    const unreachable = await fetchInstanceIdFromImds({ endpoint: 'http://127.0.0.1:1', timeoutMs: 500 }).catch(
      (e: unknown) => e,
    );
    expect(isStorageError(unreachable, 'BACKEND_ERROR')).toBe(true);
    expect(String((unreachable as Error).message)).toContain('dataset.instance_id');
    answer = '<html>captive portal</html>';
    await expect(fetchInstanceIdFromImds({ endpoint })).rejects.toMatchObject({ code: 'BACKEND_ERROR' });
    answer = 'i-0abc1234def567890';
  });
});

describe('createEbsDriver (root export)', () => {
  it('builds an EbsDriver from an agent.yml dataset section, loading the SDK on demand', () => {
    const d = createEbsDriver({
      config: {
        backend: 'aws',
        region: 'eu-west-1',
        zone: 'eu-west-1b',
        cluster_id: 'c',
        instance_id: 'i-0123456789abcdef0',
      },
    });
    expect(d).toBeInstanceOf(EbsDriver);
    expect(d.backend).toBe('aws');
    expect(d.allocationUnit()).toBe(1024 ** 3);
    expect(() =>
      createEbsDriver({ config: { backend: 'aws', region: 'eu-west-1', zone: 'us-east-1a', cluster_id: 'c' } }),
    ).toThrow(/not in region/);
  });

  it('reports the configured availability zone as its storage zone, and no free-capacity figure', async () => {
    const d = createEbsDriver({
      config: {
        backend: 'aws',
        region: 'eu-west-1',
        zone: 'eu-west-1b',
        cluster_id: 'c',
        instance_id: 'i-0123456789abcdef0',
      },
    });
    expect(await d.storageZone?.()).toBe('eu-west-1b');
    expect('availableBytes' in d).toBe(false);
  });
});
