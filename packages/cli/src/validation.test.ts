/**
 * Input checks with clear messages, `--json` errors and warnings, and help texts
 * (issue 21, "Errors say what is wrong"): the pure checks, then `flocker` end to end
 * against a fake control service client.
 */
import type { ClusterSnapshot, DatasetConfiguration, FlockerClient, NodeState } from '@flocker/api';
import { node } from '@flocker/web-ui/testing';
import { runCli } from './testing/runCli';
import { EXIT } from './errors';
import {
  metadataArguments,
  negativeArgumentProblem,
  normaliseArgv,
  overcommitWarning,
  sizeArgument,
  storageProfile,
} from './validation';

const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const D1 = '11111111-1111-4111-8111-111111111111';
const GiB = 1024 ** 3;
const long = 'a'.repeat(300);

describe('the checks', () => {
  it('joins an option and its negative value so the command sees it; leaves everything else', () => {
    expect(normaliseArgv(['volumes', 'create', 'x', '--size', '-5G'])).toEqual([
      'volumes',
      'create',
      'x',
      '--size=-5G',
    ]);
    expect(normaliseArgv(['--timeout', '-1', '--json'])).toEqual(['--timeout=-1', '--json']);
    expect(normaliseArgv(['--size', '5G', '-h'])).toEqual(['--size', '5G', '-h']);
    expect(normaliseArgv(['--', '--size', '-5G'])).toEqual(['--', '--size', '-5G']);
    expect(negativeArgumentProblem(['volumes', 'resize', 'x', '-5G'])).toMatch(/"-5G" is negative.*e\.g\. 5G/);
    expect(negativeArgumentProblem(['volumes', 'resize', 'x', '5G', '-h'])).toBeUndefined();
  });

  it('refuses a negative size by name, and passes the rest to parseSize', () => {
    expect(() => sizeArgument('--size', '-5G', 0)).toThrow('--size -5G: a size cannot be negative (e.g. --size 5G)');
    expect(sizeArgument('--size', '2G', 0)).toBe(2 * GiB);
  });

  it('knows the storage profiles the backends know, in any case', () => {
    expect(storageProfile('Gold')).toBe('gold');
    expect(() => storageProfile('platinum')).toThrow('unknown storage profile "platinum": use gold, silver or bronze');
    expect(() => storageProfile('platinum', 'aws')).toThrow(/unknown storage profile/);
    expect(() => storageProfile('platinum', 'loopback')).toThrow(/unknown storage profile/);
    // Cinder maps profiles to volume types, any of which may exist.
    expect(storageProfile('fast-ssd', 'openstack')).toBe('fast-ssd');
    // ScaleIO maps profiles to storage pools by its agent.yml profile_storage_pools, whose keys are any names.
    expect(storageProfile('ssd-pool', 'scaleio')).toBe('ssd-pool');
    expect(() => storageProfile('glod', 'loopback')).toThrow(
      'unknown storage profile "glod": use gold, silver or bronze (on Cinder nodes, also a Cinder volume type; on ScaleIO nodes, a profile of its profile_storage_pools)',
    );
    expect(storageProfile('Gold', 'openstack')).toBe('gold');
  });

  it('checks metadata with the API rules and says which key is wrong', () => {
    expect(metadataArguments(['a=1', 'b=x=y'], { name: 'v' })).toEqual({ name: 'v', a: '1', b: 'x=y' });
    expect(() => metadataArguments([`owner=${long}`])).toThrow(
      'metadata.owner: metadata values are at most 256 characters',
    );
    expect(() => metadataArguments(['novalue'])).toThrow(/not key=value/);
  });

  it('warns when a volume is larger than what the node reports free, and only then', () => {
    const n = node(A, '10.0.0.1', { available_bytes: 78 * 1000 ** 3 });
    expect(overcommitWarning(n, 10 * 1024 ** 4, 'big')).toMatchObject({
      code: 'OVERCOMMIT',
      message: expect.stringMatching(/^big \(10 TiB\) is more than the 72\.6 GiB free on 10\.0\.0\.1's storage/),
      available_bytes: 78 * 1000 ** 3,
    });
    expect(overcommitWarning(n, GiB, 'small')).toBeUndefined();
    expect(overcommitWarning(node(A, '10.0.0.1'), 10 * 1024 ** 4, 'unknown')).toBeUndefined();
  });
});

function fakeClient(nodes: NodeState[], datasets: DatasetConfiguration[] = [], creates: unknown[] = []): FlockerClient {
  const snapshot: ClusterSnapshot = { generation: '1', configuration_tag: 't', datasets, leases: [], nodes };
  const fake = {
    listDatasets: async () => datasets,
    listLeases: async () => [],
    listSnapshots: async () => [],
    waitForCluster: async () => snapshot,
    createDataset: async (req: { primary: string; maximum_size: number; metadata: Record<string, string> }) => {
      creates.push(req);
      return { dataset_id: D1, deleted: false, ...req };
    },
  };
  return fake as unknown as FlockerClient;
}

function flocker(client: FlockerClient, ...argv: string[]): ReturnType<typeof runCli> {
  return runCli(() => client, argv);
}

describe('flocker volumes create: refused with a sentence, exit 2, nothing created', () => {
  const cases: Array<[string, string[], RegExp]> = [
    ['a 300-character name', [long], /The volume name is longer than 256 characters/],
    [
      'a 300-character metadata value',
      ['v1', '--metadata', `owner=${long}`],
      /metadata\.owner: metadata values are at most 256/,
    ],
    ['--size -5G', ['v1', '--size', '-5G'], /--size -5G: a size cannot be negative/],
    [
      '--profile platinum',
      ['v1', '--profile', 'platinum'],
      /unknown storage profile "platinum": use gold, silver or bronze/,
    ],
  ];
  it.each(cases)('%s', async (_what, args, message) => {
    const creates: unknown[] = [];
    const r = await flocker(fakeClient([node(A, '10.0.0.1')], [], creates), 'volumes', 'create', ...args, '--no-wait');
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.err).toMatch(message);
    expect(r.err).not.toMatch(/"code":|\[\s*\{/);
    expect(creates).toEqual([]);
  });

  it('a negative size given as a positional: named, not "Unknown arguments: 5, G"', async () => {
    const r = await flocker(fakeClient([node(A, '10.0.0.1')]), 'volumes', 'resize', 'v1', '-5G');
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.err).toMatch(/"-5G" is negative/);
    expect(r.err).not.toMatch(/Unknown argument/);
  });

  it('a profile is stored in lower case', async () => {
    const creates: Array<{ metadata: Record<string, string> }> = [];
    const r = await flocker(
      fakeClient([node(A, '10.0.0.1')], [], creates),
      'volumes',
      'create',
      'v1',
      '--profile',
      'Gold',
      '--no-wait',
    );
    expect(r.code).toBe(0);
    expect(creates[0]?.metadata['clusterhq:flocker:profile']).toBe('gold');
  });
});

describe('overcommit: a warning naming the free capacity; the volume is created', () => {
  const full = node(A, '10.0.0.1', { available_bytes: 78 * 1000 ** 3 });

  it('as a line on stderr', async () => {
    const creates: unknown[] = [];
    const r = await flocker(
      fakeClient([full], [], creates),
      'volumes',
      'create',
      'big',
      '--size',
      '10TiB',
      '--no-wait',
    );
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/^flocker: warning: big \(10 TiB\) is more than the 72\.6 GiB free on 10\.0\.0\.1's storage/);
    expect(creates).toHaveLength(1);
  });

  it('with --json as a JSON line on stderr, stdout keeping the result', async () => {
    const r = await flocker(fakeClient([full]), 'volumes', 'create', 'big', '--size', '10TiB', '--no-wait', '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.err)).toMatchObject({
      warning: { code: 'OVERCOMMIT', available_bytes: 78 * 1000 ** 3, requested_bytes: 10 * 1024 ** 4, node: A },
    });
    expect(JSON.parse(r.out)).toMatchObject({ dataset_id: D1 });
  });

  it('when growing a volume by more than is free', async () => {
    const d: DatasetConfiguration = {
      dataset_id: D1,
      primary: A,
      maximum_size: GiB,
      metadata: { name: 'v1' },
      deleted: false,
    };
    const client = fakeClient([full], [d]);
    (client as unknown as { updateDataset: unknown }).updateDataset = async () => ({
      ...d,
      maximum_size: 10 * 1024 ** 4,
    });
    const r = await flocker(client, 'volumes', 'resize', 'v1', '10TiB', '--no-wait');
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/warning: growing v1 .* is more than the 72\.6 GiB free/);
  });
});

describe('--json errors: one {"error": {code, message, exit_code}} object on stderr, the same exit code', () => {
  it('warnings are JSON lines too: leases release --force on a volume in use', async () => {
    const d: DatasetConfiguration = {
      dataset_id: D1,
      primary: A,
      maximum_size: GiB,
      metadata: { name: 'v1' },
      deleted: false,
    };
    const client = fakeClient([node(A, '10.0.0.1', { last_seen: new Date().toISOString() })], [d]);
    const lease = { dataset_id: D1, node_uuid: A, expires: null };
    Object.assign(client, { listLeases: async () => [lease], releaseLease: async () => lease });
    const r = await flocker(client, 'leases', 'release', 'v1', '--force', '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.err)).toEqual({
      warning: { code: 'IN_USE_FORCED', message: expect.stringMatching(/^volume v1 is in use on 10\.0\.0\.1/) },
    });
    expect(JSON.parse(r.out)).toMatchObject({ dataset_id: D1 });
  });

  it('for a command that fails', async () => {
    const r = await flocker(fakeClient([node(A, '10.0.0.1')]), 'volumes', 'show', 'nothing', '--json');
    expect(r.code).toBe(EXIT.NOT_FOUND);
    expect(r.out).toBe('');
    expect(JSON.parse(r.err)).toEqual({
      error: {
        code: 'NOT_FOUND',
        message: expect.stringMatching(/no volume named or with id "nothing"/),
        exit_code: 3,
      },
    });
  });

  it('for a usage error', async () => {
    const r = await flocker(fakeClient([]), 'volumes', 'create', 'x1', '--bogus', '--json');
    expect(r.code).toBe(EXIT.USAGE);
    expect(JSON.parse(r.err)).toEqual({ error: { code: 'USAGE', message: 'Unknown argument: bogus', exit_code: 2 } });
  });
});

describe('help texts', () => {
  async function help(...argv: string[]): Promise<string> {
    const r = await flocker(fakeClient([]), ...argv, '--help');
    return r.out;
  }
  let log: jest.SpyInstance;
  const printed = (): string => log.mock.calls.map((c: unknown[]) => c.join(' ')).join('\n');
  beforeEach(() => {
    log = jest.spyOn(console, 'log').mockImplementation(() => undefined);
  });
  afterEach(() => log.mockRestore());

  it('each --wait says what it waits for: destroy does not wait until the volume is "usable"', async () => {
    await help('volumes', 'destroy');
    expect(printed()).toMatch(/--wait\s+Wait until the volume is gone from every node/);
    expect(printed()).not.toMatch(/usable/);
    log.mockClear();
    await help('volumes', 'create');
    expect(printed()).toMatch(/Wait until the volume is mounted on its node/);
  });

  it('flocker ca initialize --help shows "flocker ca initialize mycluster"', async () => {
    await help('ca', 'initialize');
    expect(printed()).toMatch(/flocker ca initialize mycluster/);
  });
});
