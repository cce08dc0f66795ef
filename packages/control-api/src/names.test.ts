/**
 * The control service's rules for new names (names.ts), in every pure path that makes a dataset or a snapshot with a
 * name: create, clone (of a snapshot, of a dataset), restore, snapshot, compose (flocker-deploy). Names
 * existing before the rule keep working; unique_name is the creator's opt-in (Flocker v1 allows duplicate names).
 */
import type { CreateDatasetRequest, DatasetConfiguration } from '@flocker/api';
import {
  type Configuration,
  createDataset,
  createSnapshot,
  deleteDataset,
  emptyConfiguration,
  registerNode,
  updateDataset,
} from './configuration';
import { compose, containersOf } from './containers';
import { ControlError } from './errors';
import { toApiError } from './httpErrors';
import { liveDatasetNamed, requireNameUnused, requireNewName } from './names';
import { A, B, D1, D2, D3, T0 } from './testing/fixtures';

const UUID_NAME = 'c6fcd4ab-6141-509f-95da-52a54a496abe';
const UPPER_NAME = UUID_NAME.toUpperCase();
const BACKUP_ID = `${D1}/20261204T070000000Z-${D2}`;

/** `status code` of what `f` throws (the HTTP answer), or 'none'. */
function refusal(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    if (!(err instanceof ControlError)) throw err;
    const api = toApiError(err);
    return `${api.status} ${api.code}`;
  }
  return 'none';
}

function withNodes(): Configuration {
  return registerNode(registerNode(emptyConfiguration, { uuid: A, host: '10.0.0.1' }), { uuid: B, host: '10.0.0.2' });
}

const dataset = (id: string, name: string | undefined, deleted = false): DatasetConfiguration => ({
  dataset_id: id,
  primary: A,
  metadata: name === undefined ? {} : { name },
  deleted,
});

/** A configuration from before the rule: D1 named like an id, with a snapshot named like one too. */
function legacy(): Configuration {
  const c = withNodes();
  return {
    ...c,
    datasets: new Map([[D1, dataset(D1, UUID_NAME)]]),
    snapshots: new Map([
      [D3, { snapshot_id: D3, dataset_id: D1, metadata: { name: UPPER_NAME }, created_at: new Date(T0).toISOString() }],
    ]),
  };
}

describe('requireNewName', () => {
  it.each([
    ['volume', UUID_NAME],
    ['volume', UPPER_NAME],
    ['snapshot', UUID_NAME],
    ['snapshot', ` ${UPPER_NAME} `],
  ] as const)('a new %s name %p is refused 400 NAME_SHAPED_LIKE_ID, in the sentence the CLI shows', (kind, name) => {
    expect(refusal(() => requireNewName(kind, name))).toBe('400 NAME_SHAPED_LIKE_ID');
    expect(() => requireNewName(kind, name)).toThrow(
      `"${name.trim()}" is shaped like a ${kind} id: a new ${kind}'s name cannot be, since commands take a ${kind}'s name or its id. Choose another name.`,
    );
  });
  it.each([
    undefined,
    '',
    'db',
    'c6fcd4ab',
    `${UUID_NAME}-2`,
    `x${UUID_NAME}`,
    'c6fcd4ab-6141-509f-95da-52a54a496abg',
    'c6fcd4ab6141509f95da52a54a496abe',
    'my volume',
  ])('%p passes (any other name, or none: the v1 API leaves names free)', (name) => {
    expect(refusal(() => requireNewName('volume', name))).toBe('none');
    expect(refusal(() => requireNewName('snapshot', name))).toBe('none');
  });
  it('a volume name is taken as given (as `flocker volumes create` does): spaces around it are not an id', () => {
    expect(refusal(() => requireNewName('volume', ` ${UUID_NAME}`))).toBe('none');
  });
});

describe('liveDatasetNamed / requireNameUnused', () => {
  const all = [dataset(D1, 'db', true), dataset(D2, 'db'), dataset(D3, 'other')];
  it('finds the first dataset not deleted with the name', () => {
    expect(liveDatasetNamed(all, 'db')?.dataset_id).toBe(D2);
    expect(liveDatasetNamed(all, 'none')).toBeUndefined();
    expect(liveDatasetNamed([dataset(D1, 'db', true)], 'db')).toBeUndefined();
  });
  it('refuses 409 DATASET_NAME_IN_USE naming the dataset; a deleted namesake does not count', () => {
    expect(refusal(() => requireNameUnused(all, 'db'))).toBe('409 DATASET_NAME_IN_USE');
    expect(() => requireNameUnused(all, 'db')).toThrow(`The name "db" is used by the dataset ${D2}`);
    expect(refusal(() => requireNameUnused([dataset(D1, 'db', true)], 'db'))).toBe('none');
    expect(refusal(() => requireNameUnused(all, 'Db'))).toBe('none');
  });
});

describe('every pure path that names a new dataset or snapshot', () => {
  const named = (name: string, extra: Partial<CreateDatasetRequest> = {}): CreateDatasetRequest => ({
    primary: A,
    metadata: { name },
    ...extra,
  });

  it('create, clone of a snapshot, clone of a dataset, restore: a UUID-shaped name is refused, nothing changes', () => {
    const c = legacy();
    const ids = () => D2;
    expect(refusal(() => createDataset(c, named(UUID_NAME), ids))).toBe('400 NAME_SHAPED_LIKE_ID');
    expect(refusal(() => createDataset(c, named(UPPER_NAME, { source_snapshot_id: D3 }), ids))).toBe(
      '400 NAME_SHAPED_LIKE_ID',
    );
    expect(refusal(() => createDataset(c, named(UUID_NAME, { source_dataset_id: D1 }), ids))).toBe(
      '400 NAME_SHAPED_LIKE_ID',
    );
    const restore = { target: 's3://bucket', backup_id: BACKUP_ID };
    expect(
      refusal(() => createDataset(c, named(UUID_NAME, { source_backup: restore, maximum_size: 1 << 26 }), ids)),
    ).toBe('400 NAME_SHAPED_LIKE_ID');
    // The same requests with another name go through.
    expect(createDataset(c, named('db2', { source_dataset_id: D1 }), ids).status).toBe(201);
    expect(createDataset(c, named('db2', { source_snapshot_id: D3 }), ids).status).toBe(201);
  });

  it('a taken dataset_id is answered as before (409 DATASET_ID_IN_USE), whatever the name: a retry stays a retry', () => {
    expect(refusal(() => createDataset(legacy(), { primary: A, dataset_id: D1, metadata: { name: UUID_NAME } }))).toBe(
      '409 DATASET_ID_IN_USE',
    );
  });

  it('a snapshot: a UUID-shaped name is refused; existing ones are kept and still unique', () => {
    const c = legacy();
    expect(refusal(() => createSnapshot(c, { dataset_id: D1, metadata: { name: UUID_NAME } }, T0))).toBe(
      '400 NAME_SHAPED_LIKE_ID',
    );
    // A snapshot of the UUID-named dataset, with an ordinary name (or none): made.
    expect(createSnapshot(c, { dataset_id: D1, metadata: { name: 'before-upgrade' } }, T0, () => D2).status).toBe(201);
    expect(createSnapshot(c, { dataset_id: D1 }, T0, () => D2).status).toBe(201);
  });

  it('a dataset that has a UUID-shaped name keeps changing: move, size, schedule, delete', () => {
    const old = legacy();
    expect(updateDataset(old, D1, { primary: B }, T0).result).toMatchObject({
      primary: B,
      metadata: { name: UUID_NAME },
    });
    const schedule = { 'clusterhq:flocker:snapshot-schedule': 'daily' };
    const sized = updateDataset(old, D1, { maximum_size: 1 << 27, metadata: schedule }, T0);
    expect(sized.result).toMatchObject({ maximum_size: 1 << 27, metadata: { name: UUID_NAME, ...schedule } });
    expect(deleteDataset(old, D1, T0).result.deleted).toBe(true);
  });

  it('compose (flocker-deploy): a new volume named like an id refuses the whole deployment; an existing one is used', () => {
    // Docker Compose's form: name:/path names the volume.
    const apps = (volume: string) => ({
      services: { web: { image: 'nginx' }, db: { image: 'postgres', volumes: [`${volume}:/data`] } },
    });
    const deployment = { version: 1, nodes: { [A]: ['web', 'db'] } };
    const c = withNodes();
    expect(refusal(() => compose(c, apps(UUID_NAME), deployment, T0, () => D2))).toBe('400 NAME_SHAPED_LIKE_ID');
    // Named after the application (Flocker's format: no name: the application's), the same.
    const appNamed = { version: 1, applications: { [UUID_NAME]: { image: 'x', volume: { mountpoint: '/d' } } } };
    expect(refusal(() => compose(c, appNamed, { version: 1, nodes: { [A]: [UUID_NAME] } }, T0, () => D2))).toBe(
      '400 NAME_SHAPED_LIKE_ID',
    );
    // An existing volume with such a name: the deployment uses it, nothing new is made.
    const old = legacy();
    const applied = compose(old, apps(UUID_NAME), deployment, T0, () => D2);
    expect(applied.config.datasets.size).toBe(1);
    expect(containersOf(applied.config).get('db')?.volumes).toEqual([{ dataset_id: D1, mountpoint: '/data' }]);
  });

  it('unique_name: a live namesake refuses the create (409); without it duplicates are made, as in Flocker v1', () => {
    let c = createDataset(withNodes(), named('db'), () => D1).config;
    expect(refusal(() => createDataset(c, named('db', { unique_name: true }), () => D2))).toBe(
      '409 DATASET_NAME_IN_USE',
    );
    // A clone asking for it is refused the same way.
    expect(refusal(() => createDataset(c, named('db', { unique_name: true, source_dataset_id: D1 }), () => D2))).toBe(
      '409 DATASET_NAME_IN_USE',
    );
    const twice = createDataset(c, named('db'), () => D2);
    expect(twice.status).toBe(201);
    expect([...twice.config.datasets.values()].filter((d) => d.metadata['name'] === 'db')).toHaveLength(2);
    // Once the namesake is deleted the name is free again (a volume removed and made anew, as the plugin does).
    c = deleteDataset(c, D1, T0).config;
    expect(createDataset(c, named('db', { unique_name: true }), () => D2).status).toBe(201);
  });
});
