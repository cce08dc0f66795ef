/** The snapshot schedule grammar (issue 20): what parses, what is refused and why, slots and names. */
import { CreateDatasetRequest, UpdateDatasetRequest } from './schemas';
import {
  datasetSnapshotSchedule,
  DEFAULT_SNAPSHOT_KEEP,
  METADATA_SNAPSHOT_KEEP_KEY as KEEP,
  METADATA_SNAPSHOT_SCHEDULE_KEY as SCHEDULE,
  nextScheduledSnapshot,
  parseSnapshotKeep,
  parseSnapshotSchedule,
  scheduledSnapshotName,
  snapshotScheduleIssues,
} from './snapshotSchedule';

const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const T0 = Date.UTC(2026, 11, 4);

describe('snapshot schedule grammar', () => {
  it.each([
    ['hourly', 3_600_000],
    ['daily', 86_400_000],
    ['every 15m', 900_000],
    ['every 6h', 21_600_000],
    ['every 2d', 172_800_000],
    ['every 30s', 30_000],
    ['every 366d', 366 * 86_400_000],
  ])('%s = %d ms', (text, ms) => {
    expect(parseSnapshotSchedule(text)).toEqual({ intervalMs: ms });
  });

  it.each([
    'weekly',
    'Hourly',
    'every',
    'every 0m',
    'every 15',
    'every 015m',
    'every -1h',
    'every 1.5h',
    ' hourly',
    'every 15 m',
    'every 1w',
  ])('refuses %j', (text) => {
    expect(parseSnapshotSchedule(text)).toEqual({ error: expect.stringContaining('is not a snapshot schedule') });
  });

  it('refuses intervals beyond 366 days', () => {
    expect(parseSnapshotSchedule('every 367d')).toEqual({ error: expect.stringContaining('longer than 366 days') });
  });

  it('keep is 1..1000', () => {
    expect(parseSnapshotKeep('1')).toEqual({ keep: 1 });
    expect(parseSnapshotKeep('1000')).toEqual({ keep: 1000 });
    for (const bad of ['0', '1001', '-1', '2.5', '', 'ten', '007']) {
      expect(parseSnapshotKeep(bad)).toEqual({ error: expect.stringContaining('from 1 to 1000') });
    }
  });

  it('issues name the key; the minimum interval applies (5 minutes unless told)', () => {
    expect(snapshotScheduleIssues({ [SCHEDULE]: 'every 4m' })).toEqual([
      { key: SCHEDULE, message: expect.stringContaining('minimum interval of 5m') },
    ]);
    expect(snapshotScheduleIssues({ [SCHEDULE]: 'every 4m' }, 1000)).toEqual([]);
    expect(snapshotScheduleIssues({ [SCHEDULE]: null, [KEEP]: null })).toEqual([]);
    expect(snapshotScheduleIssues({ [KEEP]: 'x' })).toEqual([{ key: KEEP, message: expect.any(String) }]);
  });

  it('a dataset schedule: keep defaults to 24, an interval below the minimum runs at it, none without the key', () => {
    expect(datasetSnapshotSchedule({ [SCHEDULE]: 'hourly' })).toEqual({
      text: 'hourly',
      intervalMs: 3_600_000,
      keep: DEFAULT_SNAPSHOT_KEEP,
    });
    expect(datasetSnapshotSchedule({ [SCHEDULE]: 'every 1s', [KEEP]: '3' })).toEqual({
      text: 'every 1s',
      intervalMs: 300_000,
      keep: 3,
    });
    expect(datasetSnapshotSchedule({ name: 'x' })).toBeUndefined();
  });

  it('next due: this slot when unserved, else the next', () => {
    expect(nextScheduledSnapshot(T0 + 10, 3_600_000, undefined)).toBe(T0);
    expect(nextScheduledSnapshot(T0 + 10, 3_600_000, T0 - 1)).toBe(T0);
    expect(nextScheduledSnapshot(T0 + 10, 3_600_000, T0)).toBe(T0 + 3_600_000);
  });

  it('names: <volume>-<UTC slot>, long volume names shortened to fit a metadata value', () => {
    expect(scheduledSnapshotName('db', T0 + 7 * 3_600_000, 3_600_000)).toBe('db-20261204T0700Z');
    // Seconds for an interval of seconds, on every slot (the :00 one too).
    expect(scheduledSnapshotName('db', T0 + 3000, 3000)).toBe('db-20261204T000003Z');
    expect(scheduledSnapshotName('db', T0 + 60_000, 3000)).toBe('db-20261204T000100Z');
    const long = scheduledSnapshotName('v'.repeat(300), T0, 60_000);
    expect(long.length).toBeLessThanOrEqual(256 - '-scheduled'.length);
    expect(long.endsWith('-20261204T0000Z')).toBe(true);
  });
});

describe('schemas', () => {
  it('CreateDatasetRequest checks the grammar (the minimum is the control service’s)', () => {
    expect(CreateDatasetRequest.safeParse({ primary: A, metadata: { [SCHEDULE]: 'every 1s' } }).success).toBe(true);
    const bad = CreateDatasetRequest.safeParse({ primary: A, metadata: { [SCHEDULE]: 'sometimes', [KEEP]: '0' } });
    expect(bad.error?.issues.map((i) => i.path.join('.'))).toEqual([`metadata.${SCHEDULE}`, `metadata.${KEEP}`]);
  });

  it('UpdateDatasetRequest: metadata sets or removes only the schedule keys', () => {
    expect(UpdateDatasetRequest.safeParse({ metadata: { [SCHEDULE]: 'daily', [KEEP]: null } }).success).toBe(true);
    expect(UpdateDatasetRequest.safeParse({ metadata: { name: 'x' } }).error?.issues[0]?.message).toContain(
      'can change after creation',
    );
    expect(UpdateDatasetRequest.safeParse({ metadata: { [SCHEDULE]: 'often' } }).success).toBe(false);
  });
});
