/**
 * A redeploy that changes a volume's maximum_size (review T8, TD-3) is shown in the plan: a larger size as a change
 * (the control service grows the volume), a smaller one as refused (volumes do not shrink), never "unchanged".
 */
import { type DatasetConfiguration, parseApplicationFile } from '@flocker/api';
import { containerConfig } from '../testing/containers';
import { deployPlan, formatPlan } from './plan';

const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const D = '11111111-1111-4111-8111-111111111111';
const MIB = 1024 * 1024;
const nodes = [{ uuid: A, host: '10.0.0.1' }];
const apps = (size: string) => {
  const parsed = parseApplicationFile({
    version: 1,
    applications: { db: { image: 'busybox', volume: { mountpoint: '/data', maximum_size: size } } },
  });
  if (!parsed.ok) throw new Error('bad file');
  return parsed.value;
};
const placement = new Map([['db', '10.0.0.1']]);
const volume = (maximum_size?: number): DatasetConfiguration[] => [
  { dataset_id: D, primary: A, metadata: { name: 'db' }, deleted: false, ...(maximum_size ? { maximum_size } : {}) },
];
const db = { ...containerConfig('db', A, 'busybox'), volumes: [{ dataset_id: D, mountpoint: '/data' }] };

describe("a volume's maximum_size in a redeploy (TD-3)", () => {
  test('larger: a change (the volume grows)', () => {
    expect(formatPlan(deployPlan(apps('128M'), placement, [db], nodes, volume(64 * MIB)), 'd.yml')).toEqual([
      'plan: 0 to add, 1 to change, 0 to remove, 0 unchanged',
      '  ~ db: maximum_size 64 MiB → 128 MiB (the volume grows)',
    ]);
  });

  test('smaller: flagged as refused, the rest of the plan unchanged', () => {
    expect(formatPlan(deployPlan(apps('64M'), placement, [db], nodes, volume(128 * MIB)), 'd.yml')).toEqual([
      'plan: 0 to add, 0 to change, 0 to remove, 1 unchanged',
      '  = db: busybox on 10.0.0.1',
      '  ! db: maximum_size 64 MiB is smaller than the volume db (128 MiB): volumes do not shrink, the deploy will be refused',
    ]);
  });

  test('the same size, or a volume without one: unchanged', () => {
    for (const sized of [volume(64 * MIB), volume()])
      expect(formatPlan(deployPlan(apps('64M'), placement, [db], nodes, sized), 'd.yml')).toEqual([
        'plan: 0 to add, 0 to change, 0 to remove, 1 unchanged',
        '  = db: busybox on 10.0.0.1',
      ]);
  });

  test('an application added onto an existing volume says so too', () => {
    expect(formatPlan(deployPlan(apps('128M'), placement, [], nodes, volume(64 * MIB)), 'd.yml')).toEqual([
      'plan: 1 to add, 0 to change, 0 to remove, 0 unchanged',
      '  + db: busybox on 10.0.0.1 (maximum_size 64 MiB → 128 MiB (the volume grows))',
    ]);
  });

  test('two live volumes of that name (possible through the API): the first, as compose uses, sized or not (FR-9)', () => {
    const E = '22222222-2222-4222-8222-222222222222';
    const second = (maximum_size?: number): DatasetConfiguration => ({
      dataset_id: E,
      primary: A,
      metadata: { name: 'db' },
      deleted: false,
      ...(maximum_size ? { maximum_size } : {}),
    });
    // The first is unsized: compose leaves it as it is, whatever the second's size.
    for (const size of ['128M', '64M'])
      expect(
        formatPlan(deployPlan(apps(size), placement, [db], nodes, [...volume(), second(96 * MIB)]), 'd.yml'),
      ).toEqual(['plan: 0 to add, 0 to change, 0 to remove, 1 unchanged', '  = db: busybox on 10.0.0.1']);
    // The first is 128 MiB: a smaller size is refused, even though the second is smaller still.
    expect(
      formatPlan(deployPlan(apps('64M'), placement, [db], nodes, [...volume(128 * MIB), second(32 * MIB)]), 'd.yml'),
    ).toEqual([
      'plan: 0 to add, 0 to change, 0 to remove, 1 unchanged',
      '  = db: busybox on 10.0.0.1',
      '  ! db: maximum_size 64 MiB is smaller than the volume db (128 MiB): volumes do not shrink, the deploy will be refused',
    ]);
    // A deleted first one does not count.
    const deletedFirst = [{ ...volume(16 * MIB)[0], deleted: true } as DatasetConfiguration, second(64 * MIB)];
    expect(formatPlan(deployPlan(apps('128M'), placement, [db], nodes, deletedFirst), 'd.yml')).toEqual([
      'plan: 0 to add, 1 to change, 0 to remove, 0 unchanged',
      '  ~ db: maximum_size 64 MiB → 128 MiB (the volume grows)',
    ]);
  });
});
