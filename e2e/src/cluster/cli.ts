/**
 * The harness by hand (see scripts/cluster.sh, which is the documented entry point):
 *   up [N] [--no-docker] [--no-agents] [--no-plugin] [--node-timeout S]
 *   down | status | exec <host> <cmd…> | docker <host> <args…> | env <host>
 * State lives in $FLOCKER_CLUSTER_DIR (default /tmp/flocker-cluster).
 */
import { spawnSync } from 'node:child_process';
import { inHost } from './namespaces';
import { openCluster, startCluster, type Cluster } from './Cluster';
import { ClusterError } from './run';

const USAGE = `usage: cluster.sh up [N] [--no-docker] [--no-agents] [--no-plugin] [--node-timeout S]
       cluster.sh down | status
       cluster.sh exec <host> <cmd…>      run a command inside host <host> (a, b, …)
       cluster.sh docker <host> <args…>   docker CLI against <host>'s dockerd
       cluster.sh env <host>              prints DOCKER_HOST=… for <host>
state directory: $FLOCKER_CLUSTER_DIR (default /tmp/flocker-cluster)`;

export function clusterDir(): string {
  return process.env.FLOCKER_CLUSTER_DIR ?? '/tmp/flocker-cluster';
}

interface UpArgs {
  hosts: number;
  withDocker: boolean;
  withAgents: boolean;
  withPlugin: boolean;
  nodeTimeoutSeconds: number;
}

export function parseUpArgs(args: readonly string[]): UpArgs {
  const out: UpArgs = { hosts: 3, withDocker: true, withAgents: true, withPlugin: true, nodeTimeoutSeconds: 10 };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--no-docker') out.withDocker = false;
    else if (a === '--no-agents') out.withAgents = false;
    else if (a === '--no-plugin') out.withPlugin = false;
    else if (a === '--node-timeout') {
      const v = Number(args[++i]);
      if (!(v > 0)) throw new ClusterError('USAGE', '--node-timeout needs a positive number of seconds');
      out.nodeTimeoutSeconds = v;
    } else if (a !== undefined && /^\d+$/.test(a)) out.hosts = Number(a);
    else throw new ClusterError('USAGE', `unknown argument ${a ?? ''}\n${USAGE}`);
  }
  if (out.hosts < 1 || out.hosts > 26) throw new ClusterError('USAGE', 'N must be 1..26');
  return out;
}

async function describe(cluster: Cluster): Promise<string> {
  const l = cluster.layout;
  const lines = [`cluster dir ${l.baseDir} (slot ${l.slot})`];
  const control = cluster.controlPid();
  let version = '';
  if (control !== undefined) {
    version = await cluster.client.version().then((v) => ` flocker ${v.flocker}`, () => ' (not answering)');
  }
  lines.push(`control   ${l.controlUrl} (agents use https://${l.controlBridgeAddress}:${l.controlPort}) pid ${control ?? '-'}${version}`);
  // Mutual TLS: the CLI (and curl) need the cluster CA and the API user admin's certificate.
  lines.push(`flocker CLI: ${Object.entries(cluster.cliEnv()).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  for (const h of cluster.hosts) {
    lines.push(
      `host ${h.name}    ${h.address}  node ${h.nodeUuid() ?? '-'}  agent ${h.agentPid() ?? '-'}  plugin ${h.pluginPid() ?? '-'}  dockerd ${h.dockerPid() ?? '-'}  DOCKER_HOST=unix://${h.layout.dockerSocket}`,
    );
  }
  return lines.join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'up': {
      const a = parseUpArgs(rest);
      const t0 = Date.now();
      const cluster = await startCluster({ ...a, baseDir: clusterDir() });
      console.log(await describe(cluster));
      console.log(`up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      return 0;
    }
    case 'down': {
      let cluster: Cluster;
      try {
        cluster = openCluster(clusterDir());
      } catch (err) {
        if (err instanceof ClusterError && err.code === 'NO_CLUSTER') {
          console.log(`no cluster in ${clusterDir()}`);
          return 0;
        }
        throw err;
      }
      const t0 = Date.now();
      const report = await cluster.stop();
      console.log(`down in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      for (const e of report.errors) console.error(`warning: ${e}`);
      if (report.survivors.length > 0) console.error(`processes still alive: ${report.survivors.join(' ')}`);
      if (report.loopDevicesLeft.length > 0) console.error(`loop devices left: ${report.loopDevicesLeft.join(' ')}`);
      return report.survivors.length + report.loopDevicesLeft.length > 0 ? 1 : 0;
    }
    case 'status': {
      console.log(await describe(openCluster(clusterDir())));
      return 0;
    }
    case 'exec':
    case 'docker':
    case 'env': {
      const [hostName, ...args] = rest;
      if (hostName === undefined) throw new ClusterError('USAGE', USAGE);
      const host = openCluster(clusterDir()).host(hostName);
      if (cmd === 'env') {
        console.log(`export DOCKER_HOST=unix://${host.layout.dockerSocket}`);
        return 0;
      }
      const full =
        cmd === 'exec'
          ? [...inHost(host.layout), ...(args.length > 0 ? args : ['sh'])]
          : ['docker', '-H', `unix://${host.layout.dockerSocket}`, ...args];
      const [bin, ...binArgs] = full;
      const r = spawnSync(bin ?? 'false', binArgs, { stdio: 'inherit' });
      return r.status ?? 1;
    }
    default:
      console.error(USAGE);
      return cmd === undefined || cmd === 'help' || cmd === '--help' ? 0 : 2;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err instanceof ClusterError ? `error (${err.code}): ${err.message}` : err);
      process.exit(1);
    },
  );
}
