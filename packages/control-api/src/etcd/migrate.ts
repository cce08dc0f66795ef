/**
 * flocker-control migrate-store: copies the configuration between the file store and
 * etcd (either way). Refuses a destination that already holds a configuration unless
 * forced, and verifies the copy by reading it back through a fresh store.
 * Stop every control replica first: writes made during the copy would be lost.
 */
import yargs from 'yargs';
import { type ConfigurationStore, encodeConfiguration, FileConfigurationStore } from '../ConfigurationStore';
import type { Configuration } from '../configuration';
import { StoreError, UsageError } from '../errors';
import { EtcdConfigurationStore, parseEndpoints } from './EtcdConfigurationStore';

export type StoreSpec = { kind: 'file'; dir: string } | { kind: 'etcd'; endpoints: string[] };

export function parseStoreSpec(spec: string): StoreSpec {
  const m = /^(file|etcd):(.+)$/.exec(spec);
  if (m === null)
    throw new UsageError(
      'BAD_STORE_SPEC',
      `"${spec}" is not a store: use file:<data dir> or etcd:<endpoint>,<endpoint>,….`,
    );
  return m[1] === 'file'
    ? { kind: 'file', dir: m[2] as string }
    : { kind: 'etcd', endpoints: parseEndpoints(m[2] as string) };
}

export interface EtcdAccess {
  prefix?: string;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

export interface MigrateOptions {
  from: StoreSpec;
  to: StoreSpec;
  force: boolean;
  etcd: EtcdAccess;
}

export interface MigrateResult {
  version: number;
  datasets: number;
  leases: number;
  nodes: number;
}

function open(spec: StoreSpec, etcd: EtcdAccess): ConfigurationStore {
  return spec.kind === 'file'
    ? new FileConfigurationStore(spec.dir)
    : new EtcdConfigurationStore({ endpoints: spec.endpoints, ...etcd });
}

function describe(spec: StoreSpec): string {
  return spec.kind === 'file' ? `file:${spec.dir}` : `etcd:${spec.endpoints.join(',')}`;
}

async function withStore<T>(store: ConfigurationStore, fn: (s: ConfigurationStore) => Promise<T>): Promise<T> {
  try {
    return await fn(store);
  } finally {
    await store.close?.();
  }
}

export async function migrateStore(options: MigrateOptions): Promise<MigrateResult> {
  const { from, to, etcd } = options;
  if (describe(from) === describe(to) && from.kind === 'file')
    throw new UsageError('BAD_STORE_SPEC', '--from and --to are the same store.');
  const config: Configuration = await withStore(open(from, etcd), (s) => s.load());
  await withStore(open(to, etcd), async (dest) => {
    const existing = await dest.load();
    const empty = dest instanceof EtcdConfigurationStore ? await dest.isEmpty() : existing.version === 0;
    if (!empty && !options.force) {
      throw new StoreError(
        'STORE_NOT_EMPTY',
        `${describe(to)} already holds configuration v${existing.version}; pass --force to overwrite it.`,
      );
    }
    if (dest instanceof EtcdConfigurationStore) await dest.replaceAll(config, options.force);
    else if (dest instanceof FileConfigurationStore) {
      await dest.commit(config);
      await dest.compact();
    }
  });
  const copied = await withStore(open(to, etcd), (s) => s.load());
  if (encodeConfiguration(copied) !== encodeConfiguration(config)) {
    throw new StoreError(
      'MIGRATION_VERIFY_FAILED',
      `${describe(to)} does not read back as the configuration copied (v${config.version}); it may have been written to meanwhile.`,
    );
  }
  return {
    version: config.version,
    datasets: config.datasets.size,
    leases: config.leases.size,
    nodes: config.nodes.size,
  };
}

/** `flocker-control migrate-store …` */
export async function migrateStoreCli(args: string[]): Promise<void> {
  const argv = await yargs(args)
    .scriptName('flocker-control migrate-store')
    .usage(
      '$0 --from <store> --to <store> [--force]\n\nCopies the configuration between stores (file:<data dir> or etcd:<endpoints>). Stop all control replicas first.',
    )
    .option('from', { type: 'string', demandOption: true, describe: 'Source, e.g. file:/var/lib/flocker' })
    .option('to', {
      type: 'string',
      demandOption: true,
      describe: 'Destination, e.g. etcd:http://10.0.0.1:2379,http://10.0.0.2:2379',
    })
    .option('force', {
      type: 'boolean',
      default: false,
      describe: 'Overwrite a destination that already holds a configuration',
    })
    .option('etcd-prefix', { type: 'string', default: '/flocker', describe: 'Key prefix on the etcd side' })
    .option('etcd-ca', { type: 'string', describe: 'CA certificate (PEM) of the etcd members' })
    .option('etcd-cert', { type: 'string', describe: 'Client certificate (PEM) for etcd' })
    .option('etcd-key', { type: 'string', describe: 'Private key (PEM) of --etcd-cert' })
    .example(
      '$0 --from file:/var/lib/flocker --to etcd:http://10.0.0.1:2379,http://10.0.0.2:2379,http://10.0.0.3:2379',
      'move to the HA control plane',
    )
    .example('$0 --from etcd:http://10.0.0.1:2379 --to file:/var/lib/flocker', 'and back')
    .strict()
    .help()
    .parse();
  const result = await migrateStore({
    from: parseStoreSpec(argv.from),
    to: parseStoreSpec(argv.to),
    force: argv.force,
    etcd: {
      prefix: argv['etcd-prefix'],
      ...(argv['etcd-ca'] !== undefined ? { caFile: argv['etcd-ca'] } : {}),
      ...(argv['etcd-cert'] !== undefined ? { certFile: argv['etcd-cert'] } : {}),
      ...(argv['etcd-key'] !== undefined ? { keyFile: argv['etcd-key'] } : {}),
    },
  });
  process.stdout.write(`${JSON.stringify({ migrated: true, from: argv.from, to: argv.to, ...result })}\n`);
}
