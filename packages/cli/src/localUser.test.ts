/**
 * Local storage (issue 24) as a new user meets it through `flocker` (session 15, tried on two btrfs nodes): what
 * the list, show and describe say during a move, and what `volumes move` does when the data is on a dead node.
 */
import type { ClusterSnapshot, FlockerClient, UpdateDatasetRequest } from '@flocker/api';
import { errorReason } from '@flocker/web-ui';
import { A, B, D1, dataset, node, snapshot } from '@flocker/web-ui/testing';
import { describeText, describeVolume } from './describe';
import { volumeState } from './health';
import { volumeView } from './volumes';
import { movePhase } from './progress';
import { runCli } from './testing/runCli';
import { UiActions } from './ui/actions';

const MiB = 1024 * 1024;
const at = (path: string) => ({ dataset_id: D1, blockdevice_id: `btrfs:/pool/${D1}`, size: 64 * MiB, path });
const localNode = (uuid: string, host: string, over: Parameters<typeof node>[2] = {}) =>
  node(uuid, host, { backend: 'local-btrfs', ...over });

/** Moving from a (its host mount gone: "attached") to b, phase 1 done, a container on a still using it. */
const midMove = (): ClusterSnapshot =>
  snapshot({
    datasets: [dataset(D1, 'big', B)],
    nodes: [
      localNode(A, 'a', {
        manifestations: [{ ...at('/a'), status: 'attached', path: undefined }],
        moves: [
          {
            dataset_id: D1,
            to: B,
            phase: 'waitingForRelease',
            rounds: 4,
            bytes_sent: 500 * MiB,
            bytes_total: 500 * MiB,
          },
        ],
      }),
      localNode(B, 'b'),
    ],
  });

/** rep's primary moved to b while a (which holds it) is dead; b refuses: SOURCE_UNREACHABLE, a replica on b. */
const deadSource = (): ClusterSnapshot =>
  snapshot({
    datasets: [dataset(D1, 'rep', B, { metadata: { name: 'rep', 'clusterhq:flocker:replicas': '1' } })],
    nodes: [
      localNode(A, 'a', {
        alive: false,
        manifestations: [{ ...at('/a'), status: 'mounted' }],
        replicas: [{ dataset_id: D1, node_uuid: B, snapshot: 'move-000002', taken_at: '2026-12-05T18:59:30.000Z' }],
      }),
      localNode(B, 'b', {
        errors: [
          {
            dataset_id: D1,
            action: 'refuse',
            code: 'SOURCE_UNREACHABLE',
            message: `the data of dataset ${D1} is on node ${A} (a), which is dead: local storage cannot be moved off a dead node`,
            attempts: 1,
            since: '2026-12-05T18:59:54.000Z',
          },
        ],
      }),
    ],
  });

describe('a local volume in the middle of a move', () => {
  it('volumes list/show: state "moving", not the source\'s "attached"', () => {
    expect(volumeState(midMove(), dataset(D1, 'big', B))).toMatchObject({ node: 'a', state: 'moving' });
  });
  it('describe: the new primary is named by its own host, not where the data is now', () => {
    const s = midMove();
    const text = describeText(describeVolume(s, s.datasets[0]!, [], [], []));
    // During the move it is "Moving to:" (moveStory.test.ts), beside "On:" where the data is now.
    expect(text).toMatch(new RegExp(`^Moving to: +b \\(${B}\\)`, 'm'));
  });
  it('after the first round the move does not read "0%": the copy is whole, what is left is the release', () => {
    const s = midMove();
    s.nodes[0]!.moves = [
      { dataset_id: D1, to: B, phase: 'waitingForRelease', rounds: 4, bytes_sent: 1556, bytes_total: 500 * MiB },
    ];
    const p = movePhase(s, D1, B);
    expect(p).toMatchObject({ phase: 'waiting' });
    const step = p.phase === 'waiting' ? p.step : '';
    expect(step).not.toMatch(/0%/);
    expect(step).toMatch(/500 MiB copied/);
    expect(step).toMatch(/stop what uses it on a/);
  });
});

describe('flocker volumes move (local storage)', () => {
  const run = async (args: string[], s: ClusterSnapshot) => {
    const updates: UpdateDatasetRequest[] = [];
    const d = s.datasets[0]!;
    const fake = {
      listDatasets: async () => [{ ...d, primary: A }],
      waitForCluster: async () => s,
      updateDataset: async (_id: string, req: UpdateDatasetRequest) => {
        updates.push(req);
        return { ...d, ...req, metadata: { ...d.metadata } };
      },
      listDatasetState: async () => [],
    };
    const r = await runCli(() => fake as unknown as FlockerClient, args);
    return { ...r, updates };
  };

  it('the data on a dead node: fails at once (exit 1, not a timeout), saying the move stays asked and the opt-in', async () => {
    const r = await run(['volumes', 'move', 'rep', 'b', '--timeout', '30'], deadSource());
    expect(r.code).toBe(1);
    const text = r.err;
    expect(text).toMatch(/SOURCE_UNREACHABLE|which is dead/);
    expect(text).toMatch(/replica on b/);
    expect(text).toMatch(/--accept-replica-loss/);
    expect(text).toMatch(/goes on (by itself )?if a comes back/);
  });
  it('to a dead node: refused before the primary changes (seen: exit 1 "not alive", the move asked all the same)', async () => {
    const s = midMove();
    s.nodes[1]!.alive = false;
    const r = await run(['volumes', 'move', 'big', 'b'], s);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/b .*is not alive.*nothing was changed/);
    expect(r.updates).toEqual([]);
    const asked: unknown[] = [];
    s.datasets[0]!.primary = A;
    const ui = new UiActions(
      { updateDataset: async (...x: unknown[]) => asked.push(x) } as unknown as FlockerClient,
      () => s,
    );
    await expect(ui.move(D1, { node: B })).rejects.toMatchObject({ status: 409, message: /is not alive/ });
    expect(asked).toEqual([]);
  });
  it('--accept-replica-loss sets the opt-in in the same update as the move', async () => {
    const r = await run(['volumes', 'move', 'rep', 'b', '--no-wait', '--accept-replica-loss'], deadSource());
    expect(r.code).toBe(0);
    expect(r.updates).toEqual([{ primary: B, metadata: { 'clusterhq:flocker:accept-replica-loss': 'true' } }]);
  });
  it('--accept-replica-loss waits past the refusal the target reported before the opt-in (seen live: exit 1)', async () => {
    const refused = deadSource();
    const promoted = deadSource();
    promoted.generation = '2';
    promoted.nodes[1] = localNode(B, 'b', { manifestations: [{ ...at('/b'), status: 'mounted' }] });
    const snapshots = [refused, refused, promoted];
    const d = refused.datasets[0]!;
    const fake = {
      listDatasets: async () => [{ ...d, primary: A }],
      waitForCluster: async () => (snapshots.length > 1 ? snapshots.shift() : snapshots[0]),
      updateDataset: async () => d,
      listDatasetState: async () => [{ dataset_id: D1, primary: B, maximum_size: 1, path: '/b' }],
    };
    const r = await runCli(
      () => fake as unknown as FlockerClient,
      ['volumes', 'move', 'rep', 'b', '--accept-replica-loss', '--timeout', '5'],
    );
    expect(r.err).not.toMatch(/^flocker:/m);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/rep is mounted on b at \/b/);
  });
  it('a timed-out wait says the move goes on', async () => {
    const r = await run(['volumes', 'move', 'big', 'b', '--timeout', '0'], midMove());
    expect(r.code).toBe(5);
    expect(r.err).toMatch(/the move goes on/);
  });
  it('--help says what a move of a local volume does', async () => {
    const log = jest.spyOn(console, 'log').mockImplementation(() => undefined);
    const text = await run(['volumes', 'move', '--help'], midMove())
      .then(() => log.mock.calls.map((c: unknown[]) => c.join(' ')).join('\n'))
      .finally(() => log.mockRestore());
    expect(text).toMatch(/local/);
    expect(text).toMatch(/copies/);
    expect(text).toMatch(/--accept-replica-loss/);
  });
});

describe('flocker volumes show (local storage)', () => {
  const show = (s: ClusterSnapshot) =>
    runCli(
      () =>
        ({
          listDatasets: async () => s.datasets,
          waitForCluster: async () => s,
          listLeases: async () => [],
          listSnapshots: async () => [],
        }) as unknown as FlockerClient,
      ['volumes', 'show', s.datasets[0]!.metadata.name!],
    );
  it('a running move: its phase and progress, as describe and the UI show it', async () => {
    const r = await show(midMove());
    expect(r.out).toMatch(/^State: +moving/m);
    expect(r.out).toMatch(/^Moving: +caught up with a; waiting for its users to release the volume/m);
  });
  it('a standby replica: its node and age (what a failover to it would lose)', async () => {
    const s = deadSource();
    s.datasets[0]!.primary = A;
    s.nodes[0]!.alive = true;
    s.nodes[1]!.errors = [];
    const r = await show(s);
    expect(r.out).toMatch(/^Replica: +replica on b, .* old$/m);
  });
});

describe("a local agent's refusal (action 'refuse') reads as one, not as 'refuse failed (1 attempts)'", () => {
  it('in volumes move, volumes show, status and the UI model', async () => {
    const s = deadSource();
    const fake = {
      listDatasets: async () => s.datasets,
      waitForCluster: async () => s,
      listLeases: async () => [],
      listSnapshots: async () => [],
      listEvents: async () => [],
      listNodes: async () => [],
      version: async () => ({ flocker: 'x' }),
    } as unknown as FlockerClient;
    for (const argv of [['volumes', 'show', 'rep'], ['status']]) {
      const r = await runCli(() => fake, argv);
      expect(`${r.out}\n${r.err}`).toMatch(/refused on b/);
      expect(`${r.out}\n${r.err}`).not.toMatch(/refuse failed/);
    }
    const step = movePhase({ ...s, nodes: [{ ...s.nodes[0]!, alive: true }, s.nodes[1]!] }, D1, B);
    expect(step).toMatchObject({ error: expect.stringMatching(/^refused: /) });
    expect(errorReason({ ...s.nodes[1]!.errors[0]!, host: 'b' })).toMatch(/^refused on b: /);
  });
});

describe('snapshots of a local volume: not taken by local storage yet, so refused at once (seen: "requested" forever)', () => {
  /** pg on a (local), a loopback node c beside it. */
  const C = '0c0c0c0c-0000-4000-8000-00000000000c';
  const cluster = (): ClusterSnapshot =>
    snapshot({
      datasets: [dataset(D1, 'pg', A)],
      nodes: [localNode(A, 'a', { manifestations: [{ ...at('/a'), status: 'mounted' }] }), node(C, 'c')],
    });
  const calls: string[] = [];
  const fake = () => {
    const s = cluster();
    return {
      listDatasets: async () => s.datasets,
      waitForCluster: async () => s,
      listSnapshots: async () => [],
      createSnapshot: async () => {
        calls.push('createSnapshot');
        throw new Error('asked');
      },
      createDataset: async () => {
        calls.push('createDataset');
        throw new Error('asked');
      },
      updateDataset: async () => {
        calls.push('updateDataset');
        throw new Error('asked');
      },
    } as unknown as FlockerClient;
  };
  it.each([
    [['snapshots', 'create', 'pg', '--name', 's1']],
    [['volumes', 'clone', 'pgc', '--volume', 'pg']],
    [['volumes', 'schedule', 'pg', 'hourly']],
    [['volumes', 'create', 'logs', '--node', 'a', '--size', '1G', '--snapshot-schedule', 'hourly']],
  ])('flocker %j: exit 1, nothing asked', async (argv) => {
    calls.length = 0;
    const r = await runCli(fake, argv);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/local storage .*no snapshots/);
    expect(calls).toEqual([]);
  });
  it('the web UI: take a snapshot and set a schedule are refused with the same words', async () => {
    calls.length = 0;
    const ui = new UiActions(fake(), () => cluster());
    await expect(ui.takeSnapshot(D1, {})).rejects.toMatchObject({
      status: 409,
      message: /local storage .*no snapshots/,
    });
    await expect(ui.setSchedule(D1, { schedule: 'hourly', keep: '' })).rejects.toMatchObject({ status: 409 });
    expect(calls).toEqual([]);
  });
  it('a clone onto a local node (seen: created empty, "mounted", its snapshot never taken) is refused too', async () => {
    calls.length = 0;
    const S = '51515151-0000-4000-8000-000000000051';
    const withSnapshot = (): FlockerClient => {
      const f = fake();
      const snap = {
        snapshot_id: S,
        dataset_id: D1,
        metadata: { name: 'nightly' },
        created_at: '2026-01-01T00:00:00Z',
      };
      return { ...f, listSnapshots: async () => [snap] } as unknown as FlockerClient;
    };
    const r = await runCli(withSnapshot, ['volumes', 'clone', 'pgc', '--snapshot', 'nightly', '--node', 'a']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/local storage .*no snapshots/);
    const ui = new UiActions(fake(), () => cluster());
    await expect(ui.clone(S, { name: 'pgc', size: '', node: A })).rejects.toMatchObject({ status: 409 });
    expect(calls).toEqual([]);
  });
  it('backup create of a local volume and a restore onto a local node: refused before the store is read', async () => {
    calls.length = 0;
    const withBackup = (): FlockerClient =>
      ({
        ...fake(),
        createBackup: async () => {
          calls.push('createBackup');
          throw new Error('asked');
        },
      }) as unknown as FlockerClient;
    const env = { ...process.env };
    try {
      // No store is reachable here: a read of it would fail with another message.
      process.env.AWS_ACCESS_KEY_ID = 'x';
      process.env.AWS_SECRET_ACCESS_KEY = 'y';
      for (const argv of [
        ['backup', 'create', 'pg', '--to', 's3://bucket/p'],
        [
          'backup',
          'restore',
          'b1',
          '--from',
          's3://bucket/p',
          '--name',
          'pgr',
          '--node',
          'a',
          '--endpoint',
          'http://127.0.0.1:1',
        ],
      ]) {
        const r = await runCli(withBackup, argv);
        expect(r.err).toMatch(/local storage .*no snapshots/);
        expect(r.code).toBe(1);
      }
    } finally {
      process.env = env;
    }
    expect(calls).toEqual([]);
  });
  it('removing a schedule, and a volume on another backend, are asked for', async () => {
    calls.length = 0;
    // The fake refuses every write ("asked"): only whether it was reached counts here.
    await runCli(fake, ['volumes', 'schedule', 'pg', '--off']).catch(() => undefined);
    await runCli(fake, [
      'volumes',
      'create',
      'logs',
      '--node',
      'c',
      '--size',
      '1G',
      '--snapshot-schedule',
      'hourly',
    ]).catch(() => undefined);
    expect(calls).toEqual(['updateDataset', 'createDataset']);
  });
});

describe('a volume two nodes report (a local live copy left on a node that came back: TWO_LIVE_COPIES)', () => {
  it("list/show describe the primary's copy, whatever the order of the nodes", () => {
    const s = snapshot({
      datasets: [dataset(D1, 'rep', B)],
      nodes: [
        localNode(A, 'a', { manifestations: [{ ...at('/a'), status: 'mounted' }] }),
        localNode(B, 'b', { manifestations: [{ ...at('/b'), status: 'mounted', used_bytes: 5 }] }),
      ],
    });
    expect(volumeState(s, s.datasets[0]!)).toMatchObject({ node: 'b', state: 'mounted', path: '/b' });
    expect(volumeView(s, s.datasets[0]!)).toMatchObject({ node_uuid: B, used_bytes: 5, path: '/b' });
  });
});
