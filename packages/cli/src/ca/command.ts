/** `flocker-ca` / `flocker ca`: the cluster's certificate authority. */
import type { Argv } from 'yargs';
import { CaError, createApiCertificate, createControlCertificate, createNodeCertificate, initialize } from './files';

interface PathArgs {
  inputpath: string;
  outputpath: string;
  'key-type': 'ecdsa' | 'rsa';
}

function paths<T>(y: Argv<T>) {
  return y
    .option('inputpath', { type: 'string', default: '.', describe: 'Directory holding cluster.crt and cluster.key' })
    .option('outputpath', { type: 'string', default: '.', describe: 'Directory to write the new files to' })
    .option('key-type', {
      choices: ['ecdsa', 'rsa'] as const,
      default: 'ecdsa' as const,
      describe: 'ECDSA P-256 or RSA 2048',
    });
}

function common(a: PathArgs) {
  return { inputPath: a.inputpath, outputPath: a.outputpath, keyType: a['key-type'] };
}

async function run(action: () => Promise<string>): Promise<void> {
  try {
    console.log(await action());
  } catch (e) {
    if (e instanceof CaError) {
      console.error(`flocker-ca: ${e.message}`);
      process.exitCode = 1;
      return;
    }
    throw e;
  }
}

/**
 * The commands, for `flocker-ca` and for `flocker ca`; `program` is how the user typed it,
 * for the examples (yargs' $0 would be just "flocker" under `flocker ca`).
 */
export function caCommands<T>(y: Argv<T>, program = 'flocker-ca'): Argv<T> {
  return y
    .command(
      'initialize <cluster-name>',
      'Create the cluster certificate authority (cluster.crt, cluster.key)',
      (b) =>
        b
          .positional('cluster-name', { type: 'string', demandOption: true, describe: 'A name for the cluster' })
          .option('outputpath', { type: 'string', default: '.', describe: 'Directory to write to' })
          .option('key-type', { choices: ['ecdsa', 'rsa'] as const, default: 'ecdsa' as const })
          .example(`${program} initialize mycluster`, 'writes ./cluster.crt and ./cluster.key (keep the key safe)'),
      (a) =>
        run(async () => {
          const r = await initialize(a['cluster-name'], a.outputpath, { keyType: a['key-type'] });
          return `Created ${r.certificate} and ${r.privateKey} (cluster ${r.clusterUuid}).\nCopy cluster.crt to every node and client; keep cluster.key with the administrator.`;
        }),
    )
    .command(
      'create-control-certificate <hostname>',
      'Certificate for the control service (control-<hostname>.crt/.key)',
      (b) =>
        paths(
          b.positional('hostname', {
            type: 'string',
            demandOption: true,
            describe: 'Host name or IP address agents and clients use to reach the control service',
          }),
        ).example(`${program} create-control-certificate control.example.com`, 'in the directory holding cluster.key'),
      (a) =>
        run(async () => {
          const r = await createControlCertificate(a.hostname, common(a));
          return `Created ${r.certificate} and ${r.privateKey}.\nInstall them on the control node as /etc/flocker/control-service.crt and control-service.key.`;
        }),
    )
    .command(
      'create-node-certificate',
      'Certificate for a node (<uuid>.crt/.key); the UUID becomes the node identity',
      (b) =>
        paths(b.option('uuid', { type: 'string', describe: 'Use this node UUID instead of a new random one' })).example(
          `${program} create-node-certificate`,
          'writes <uuid>.crt and <uuid>.key',
        ),
      (a) =>
        run(async () => {
          const r = await createNodeCertificate({ ...common(a), ...(a.uuid ? { uuid: a.uuid } : {}) });
          return `Created ${r.certificate} and ${r.privateKey} for node ${r.uuid}.\nInstall them on the node as /etc/flocker/node.crt and node.key.`;
        }),
    )
    .command(
      'create-api-certificate <username>',
      'Certificate for an API user (<username>.crt/.key)',
      (b) =>
        paths(b.positional('username', { type: 'string', demandOption: true })).example(
          `${program} create-api-certificate alice`,
          'writes alice.crt and alice.key',
        ),
      (a) =>
        run(async () => {
          const r = await createApiCertificate(a.username, common(a));
          return `Created ${r.certificate} and ${r.privateKey}.\nUse them with: curl --cacert cluster.crt --cert ${a.username}.crt --key ${a.username}.key https://<control>:4523/v1/version`;
        }),
    )
    .demandCommand(
      1,
      'Name a command: initialize, create-control-certificate, create-node-certificate or create-api-certificate',
    )
    .strict();
}
