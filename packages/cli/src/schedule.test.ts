/**
 * Scheduled snapshots in the CLI (issue 20): `volumes create --snapshot-schedule/--snapshot-keep`,
 * `volumes schedule`, the schedule and next due time in `volumes show`, scheduled snapshots
 * marked in `snapshots list`; the pure helpers behind them.
 */
import type {
  ClusterSnapshot,
  DatasetConfiguration,
  FlockerClient,
  SnapshotConfiguration,
  UpdateDatasetRequest,
} from '@flocker/api';
import { node as fixtureNode } from '@flocker/web-ui/testing';
import { runCli } from './testing/runCli';
import { EXIT } from './errors';
import { scheduledBy, scheduleMetadata, volumeSchedule } from './snapshots';

const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const D1 = '11111111-1111-4111-8111-111111111111';
const S1 = '51515151-0000-4000-8000-000000000001';
const S2 = '51515151-0000-4000-8000-000000000002';
const SCHEDULE = 'clusterhq:flocker:snapshot-schedule';
const KEEP = 'clusterhq:flocker:snapshot-keep';
const SCHEDULED = 'clusterhq:flocker:scheduled';
const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 11, 4);

const ds = (metadata: Record<string, string>, patch: Partial<DatasetConfiguration> = {}): DatasetConfiguration => ({
  dataset_id: D1,
  primary: A,
  maximum_size: 128 * 1024 * 1024,
  metadata: { name: 'pgdata', ...metadata },
  deleted: false,
  ...patch,
});
const snap = (id: string, at: number, metadata: Record<string, string>): SnapshotConfiguration => ({
  snapshot_id: id,
  dataset_id: D1,
  metadata,
  created_at: new Date(at).toISOString(),
});

class FakeControl {
  calls: Array<[string, ...unknown[]]> = [];
  constructor(
    public datasets: DatasetConfiguration[],
    public snapshots: SnapshotConfiguration[] = [],
  ) {}
  client(): FlockerClient {
    const cluster = (): ClusterSnapshot => ({
      generation: '1',
      configuration_tag: 't',
      datasets: this.datasets,
      leases: [],
      nodes: [fixtureNode(A, '10.0.0.1', { last_seen: new Date().toISOString() })],
      snapshots: this.snapshots,
    });
    const fake = {
      listDatasets: async () => this.datasets,
      listLeases: async () => [],
      listSnapshots: async () => this.snapshots,
      waitForCluster: async () => cluster(),
      createDataset: async (req: { primary: string; metadata?: Record<string, string> }) => {
        this.calls.push(['create', req.metadata]);
        return ds({}, { metadata: req.metadata ?? {} });
      },
      updateDataset: async (id: string, req: UpdateDatasetRequest) => {
        this.calls.push(['update', id, req]);
        const d = this.datasets.find((x) => x.dataset_id === id)!;
        const metadata = { ...d.metadata };
        for (const [k, v] of Object.entries(req.metadata ?? {})) {
          if (v === null) delete metadata[k];
          else metadata[k] = v;
        }
        return { ...d, metadata };
      },
    };
    return fake as unknown as FlockerClient;
  }
}

function flocker(control: FakeControl, ...argv: string[]): ReturnType<typeof runCli> {
  return runCli(() => control.client(), argv);
}

describe('schedule helpers (pure)', () => {
  it('scheduleMetadata: the keys to send; the grammar and keep checked as usage errors', () => {
    expect(scheduleMetadata(undefined, undefined)).toEqual({});
    expect(scheduleMetadata('hourly', '24')).toEqual({ [SCHEDULE]: 'hourly', [KEEP]: '24' });
    expect(scheduleMetadata('every 15m', undefined)).toEqual({ [SCHEDULE]: 'every 15m' });
    expect(() => scheduleMetadata('weekly', undefined)).toThrow(
      expect.objectContaining({ exitCode: EXIT.USAGE, message: expect.stringMatching(/not a snapshot schedule/) }),
    );
    expect(() => scheduleMetadata('hourly', '0')).toThrow(expect.objectContaining({ exitCode: EXIT.USAGE }));
    expect(() => scheduleMetadata(undefined, '3')).toThrow(
      expect.objectContaining({ message: '--snapshot-keep needs --snapshot-schedule' }),
    );
  });

  it('volumeSchedule: next due is this slot before the first snapshot in it, else the next; null without one', () => {
    const d = ds({ [SCHEDULE]: 'hourly', [KEEP]: '5' });
    expect(volumeSchedule(d, [], T0 + 10)).toEqual({
      schedule: 'hourly',
      keep: 5,
      kept: 0,
      next_due: new Date(T0).toISOString(),
      not_run: null,
    });
    const taken = [snap(S1, T0 + 5, { [SCHEDULED]: 'hourly' }), snap(S2, T0 + 6, { name: 'manual' })];
    expect(volumeSchedule(d, taken, T0 + 10)).toMatchObject({ kept: 1, next_due: new Date(T0 + HOUR).toISOString() });
    expect(volumeSchedule(ds({}), taken, T0)).toBeNull();
    expect(volumeSchedule(ds({ [SCHEDULE]: 'hourly' }, { deleted: true }), taken, T0)).toBeNull();
    expect(scheduledBy(taken[0]!)).toBe('hourly');
    expect(scheduledBy(taken[1]!)).toBeNull();
  });
});

describe('flocker commands', () => {
  it('volumes create --snapshot-schedule hourly --snapshot-keep 24 stores the schedule in the metadata', async () => {
    const c = new FakeControl([]);
    const r = await flocker(
      c,
      'volumes',
      'create',
      'pgdata',
      '--size',
      '1G',
      '--snapshot-schedule',
      'hourly',
      '--snapshot-keep',
      '24',
      '--no-wait',
    );
    expect(r.code).toBe(0);
    expect(c.calls).toEqual([['create', { name: 'pgdata', [SCHEDULE]: 'hourly', [KEEP]: '24' }]]);
  });

  it('volumes create with a bad schedule is a usage error and creates nothing', async () => {
    const c = new FakeControl([]);
    const r = await flocker(c, 'volumes', 'create', 'pgdata', '--snapshot-schedule', 'every 15', '--no-wait');
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.err).toMatch(/"every 15" is not a snapshot schedule; use hourly, daily or 'every <N><s\|m\|h\|d>'/);
    expect(c.calls).toEqual([]);
  });

  it('volumes show prints the schedule, how many are kept and the next due time', async () => {
    const c = new FakeControl(
      [ds({ [SCHEDULE]: 'every 15m', [KEEP]: '4' })],
      [snap(S1, Date.now(), { name: 'pgdata-x', [SCHEDULED]: 'every 15m' })],
    );
    const r = await flocker(c, 'volumes', 'show', 'pgdata');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(
      /Snapshots: {2}every 15m, keep 4 \(1 kept\); next at \d{4}-\d\d-\d\dT\d\d:(00|15|30|45):00\.000Z \(in \d+[sm]\)/,
    );
    const json = JSON.parse((await flocker(c, 'volumes', 'show', 'pgdata', '--json')).out) as {
      snapshot_schedule: { schedule: string; keep: number };
    };
    expect(json.snapshot_schedule).toMatchObject({ schedule: 'every 15m', keep: 4 });
    const none = await flocker(new FakeControl([ds({})]), 'volumes', 'show', 'pgdata');
    expect(none.out).toMatch(/Snapshots: {2}no schedule/);
  });

  it('volumes schedule sets, changes keep only, and removes (--off) through a metadata update', async () => {
    const c = new FakeControl([ds({ [SCHEDULE]: 'daily' })]);
    expect((await flocker(c, 'volumes', 'schedule', 'pgdata', 'hourly', '--keep', '48')).out).toMatch(
      /pgdata: hourly, keep 48; next snapshot due now \(its slot began at 20/,
    );
    await flocker(c, 'volumes', 'schedule', 'pgdata', '--keep', '12');
    const off = await flocker(c, 'volumes', 'schedule', 'pgdata', '--off');
    expect(off.out).toBe('pgdata: no snapshot schedule');
    expect(c.calls).toEqual([
      ['update', D1, { metadata: { [SCHEDULE]: 'hourly', [KEEP]: '48' } }],
      ['update', D1, { metadata: { [SCHEDULE]: 'daily', [KEEP]: '12' } }],
      ['update', D1, { metadata: { [SCHEDULE]: null, [KEEP]: null } }],
    ]);
    const bad = await flocker(c, 'volumes', 'schedule', 'pgdata');
    expect(bad.code).toBe(EXIT.USAGE);
    expect((await flocker(c, 'volumes', 'schedule', 'pgdata', 'hourly', '--off')).code).toBe(EXIT.USAGE);
    const unscheduled = new FakeControl([ds({})]);
    expect((await flocker(unscheduled, 'volumes', 'schedule', 'pgdata', '--keep', '3')).err).toMatch(
      /pgdata has no snapshot schedule/,
    );
  });

  it('snapshots list marks scheduled snapshots with their schedule, manual ones with -', async () => {
    const c = new FakeControl(
      [ds({ [SCHEDULE]: 'hourly' })],
      [snap(S1, T0, { name: 'pgdata-20261204T0000Z', [SCHEDULED]: 'hourly' }), snap(S2, T0 + 1, { name: 'by-hand' })],
    );
    const r = await flocker(c, 'snapshots', 'list');
    const lines = r.out.split('\n');
    expect(lines[0]).toMatch(/NAME +SNAPSHOT +VOLUME +SIZE +TAKEN +STATE +SCHEDULED/);
    expect(lines.find((l) => l.startsWith('pgdata-20261204T0000Z'))).toMatch(/ hourly$/);
    expect(lines.find((l) => l.startsWith('by-hand'))).toMatch(/ -$/);
    const json = JSON.parse((await flocker(c, 'snapshots', 'list', '--json')).out) as { scheduled: string | null }[];
    expect(json.map((s) => s.scheduled)).toEqual(['hourly', null]);
    expect((await flocker(c, 'snapshots', 'show', 'by-hand')).out).toMatch(/Scheduled: {2}no \(taken by hand\)/);
  });
});
