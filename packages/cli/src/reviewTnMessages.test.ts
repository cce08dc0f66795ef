/**
 * Review TN (session 21), F9: small CLI messages. Each failed before its fix: ui --port 99999 (Node's RangeError,
 * exit 1), volumes clone without --snapshot/--volume (a stack trace: the .check()'s error was rethrown), --metadata
 * name=… naming a --name option volumes create does not have, the create --help example wrapped into its description,
 * resize/move to the current size/node ("from 128 MiB to 128 MiB"), schedule's past "next snapshot at", the
 * internal metadata key as a refusal's subject, `flocker containers` alone (exit 2), version's unlabelled numbers.
 */
import {
  FlockerApiError,
  type ClusterSnapshot,
  type DatasetConfiguration,
  type FlockerClient,
  type UpdateDatasetRequest,
} from '@flocker/api';
import { mounted, node } from '@flocker/web-ui/testing';
import { nextSnapshotText } from './cli';
import { runCli } from './testing/runCli';
import { EXIT } from './errors';
import { versionText } from './version';

const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const D1 = '11111111-1111-4111-8111-111111111111';
const MiB = 1024 * 1024;

function fake(patch: Record<string, unknown> = {}) {
  const calls: unknown[] = [];
  const d: DatasetConfiguration = {
    dataset_id: D1,
    primary: A,
    maximum_size: 128 * MiB,
    metadata: { name: 'small' },
    deleted: false,
  };
  const cluster: ClusterSnapshot = {
    generation: '1',
    configuration_tag: 't',
    datasets: [d],
    leases: [],
    nodes: [
      node(A, '10.0.0.1', {
        last_seen: new Date().toISOString(),
        manifestations: [{ ...mounted(D1), size: 128 * MiB }],
      }),
    ],
  };
  const client = {
    version: async () => ({ flocker: '1.16.0-ts.0' }),
    listNodes: async () => [{ uuid: A, host: '10.0.0.1', version: '0.1.0' }],
    listDatasets: async () => [d],
    listLeases: async () => [],
    listSnapshots: async () => [],
    listContainers: async () => [],
    listContainerState: async () => [],
    waitForCluster: async () => cluster,
    updateDataset: async (id: string, req: UpdateDatasetRequest) => {
      calls.push(['update', id, req]);
      return d;
    },
    ...patch,
  } as unknown as FlockerClient;
  return { calls, client: () => client };
}

describe('usage errors the CLI checks itself', () => {
  it('ui --port 99999 is a usage error naming the range', async () => {
    const r = await runCli(fake().client, ['ui', '--port', '99999']);
    expect(r).toMatchObject({ code: EXIT.USAGE });
    expect(r.err).toContain('--port 99999 is not a port: give 0-65535');
  });

  it('volumes clone without --snapshot or --volume is a usage error, not a crash', async () => {
    const r = await runCli(fake().client, ['volumes', 'clone', 'copy']);
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.err).toContain('give --snapshot or --volume');
  });

  it('volumes create --metadata name=… names the NAME argument, not a --name option', async () => {
    const r = await runCli(fake().client, ['volumes', 'create', 'x1', '--metadata', 'name=other', '--no-wait']);
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.err).toContain(`the volume's name is the NAME argument ("x1")`);
    expect(r.err).not.toContain('--name');
  });

  it('volumes create --help shows each example command on a line of its own', async () => {
    const log = jest.spyOn(console, 'log').mockImplementation(() => undefined);
    await runCli(fake().client, ['volumes', 'create', '--help']);
    const printed = log.mock.calls.map((c: unknown[]) => c.join(' ')).join('\n');
    log.mockRestore();
    expect(printed).toMatch(/^ {2}flocker volumes create pgdata --snapshot-schedule hourly --snapshot-keep 24$/m);
  });
});

describe('what the CLI says', () => {
  it('resize to the current size says "already"', async () => {
    const f = fake();
    const r = await runCli(f.client, ['volumes', 'resize', 'small', '128M', '--no-wait']);
    expect(r).toMatchObject({ code: 0, out: 'small is already 128 MiB' });
    expect(f.calls).toEqual([]);
    const waited = await runCli(f.client, ['volumes', 'resize', 'small', '128M', '--timeout', '30']);
    expect(waited.err).toContain('small is already 128 MiB');
    expect(waited.err).not.toContain('from 128 MiB to 128 MiB');
  });

  it('move to the node it is on says "already"', async () => {
    const r = await runCli(fake().client, ['volumes', 'move', 'small', '10.0.0.1', '--no-wait']);
    expect(r).toMatchObject({ code: 0, out: 'small is already on 10.0.0.1' });
  });

  it('schedule says a snapshot whose slot has begun is due now, not at a past time', async () => {
    const now = Date.parse('2026-12-06T15:41:00.000Z');
    expect(nextSnapshotText('2026-12-06T15:40:00.000Z', now)).toBe(
      'due now (its slot began at 2026-12-06T15:40:00.000Z)',
    );
    expect(nextSnapshotText('2026-12-06T15:45:00.000Z', now)).toBe('at 2026-12-06T15:45:00.000Z');
  });

  it("a refused schedule's message has no metadata key as its subject", async () => {
    const refuse = async () => {
      throw new FlockerApiError(
        400,
        'SNAPSHOT_SCHEDULE_TOO_FREQUENT',
        'clusterhq:flocker:snapshot-schedule: the snapshot schedule "every 1m" is more frequent than the minimum interval of 5m.',
      );
    };
    const r = await runCli(fake({ updateDataset: refuse }).client, ['volumes', 'schedule', 'small', 'every 1m']);
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.err).toBe('flocker: the snapshot schedule "every 1m" is more frequent than the minimum interval of 5m.');
  });

  it('containers alone lists them, as nodes alone does', async () => {
    const r = await runCli(fake().client, ['containers']);
    expect(r.code).toBe(0);
    expect(r).toEqual(await runCli(fake().client, ['containers', 'list']));
  });

  it("version labels the server's API version and shows the nodes' releases", async () => {
    const r = await runCli(fake().client, ['version']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^Client: {2}\S+ \(release\)$/m);
    expect(r.out).toMatch(/^Server: {2}1\.16\.0-ts\.0 \(Flocker API version, not a release\)$/m);
    expect(r.out).toMatch(/^Nodes: {3}0\.1\.0 \(10\.0\.0\.1\)$/m);
    expect(
      versionText({
        client: '0.2.0',
        server: { flocker: '1.16.0-ts.0', error: null },
        nodes: [
          { release: '0.1.0', hosts: ['a', 'b', 'c', 'd'] },
          { release: 'unknown', hosts: ['e'] },
        ],
      }).split('\n')[2],
    ).toBe('Nodes:   0.1.0 (a, b, c and 1 more); unknown (e)');
  });
});
