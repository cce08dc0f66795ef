/**
 * The harness by hand (see scripts/cluster.sh, which is the documented entry point):
 *   up [N] [--backend loopback|local] [--no-docker] [--no-agents] [--no-plugin] [--no-container-agents]
 *      [--node-timeout S] [--lease-grace S]
 *   down | status | exec <host> <cmd…> | docker <host> <args…> | env <host> | flocker <args…>
 *   kill | poweroff | poweron | partition | heal | start <host>     (faults, for failover demos)
 * State lives in $FLOCKER_CLUSTER_DIR (default /tmp/flocker-cluster).
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { inHost } from './namespaces';
import { openCluster, REPO_ROOT, startCluster, type Cluster } from './Cluster';
import { LOCAL_TRANSFER_PORT, type ClusterBackend } from './layout';
import type { NodeState } from '@flocker/api';
import type { ClusterHost } from './Host';
import { ClusterError } from './run';

const USAGE = `usage: cluster.sh up [N] [--backend loopback|local] [--no-docker] [--no-agents] [--no-plugin]
                     [--no-container-agents] [--node-timeout S] [--lease-grace S]
           --backend local: each host its own btrfs file system on its own loop device (issue 24; a move
           copies the data host to host over mutual TLS); default loopback: one pool shared by every host
           each host runs a dataset agent, the Docker plugin, dockerd and a container agent (flocker-deploy's;
           --no-container-agents: none, so deployed applications stay pending)
       cluster.sh down | status
       cluster.sh exec <host> <cmd…>      run a command inside host <host> (a, b, …)
       cluster.sh docker <host> <args…>   docker CLI against <host>'s dockerd
       cluster.sh env <host>              prints DOCKER_HOST=… for <host>
       cluster.sh flocker <args…>         the flocker CLI against this cluster (e.g. flocker volumes list)
faults (for failover demos):
       cluster.sh kill <host>             SIGKILL its agent, plugin, dockerd and container agent; containers keep running
       cluster.sh start <host>            start its stopped agent/plugin/dockerd/container agent again (same era)
       cluster.sh poweroff <host>         every process dies, its mounts vanish (loop devices stay)
       cluster.sh poweron <host>          boot it again: new era, fresh mount namespace, start all
       cluster.sh partition <host>        cut its network; every process keeps running
       cluster.sh heal <host>             reconnect it
state directory: $FLOCKER_CLUSTER_DIR (default /tmp/flocker-cluster)`;

export function clusterDir(): string {
  return process.env.FLOCKER_CLUSTER_DIR ?? '/tmp/flocker-cluster';
}

interface UpArgs {
  hosts: number;
  withDocker: boolean;
  withAgents: boolean;
  withPlugin: boolean;
  /** A container agent per host (flocker-deploy's), after dockerd; off without Docker or dataset agents. */
  withContainerAgents: boolean;
  nodeTimeoutSeconds: number;
  /** undefined: flocker-control's default (5 s). */
  leaseGraceSeconds?: number;
  /** undefined: loopback (startCluster's default). */
  backend?: ClusterBackend;
}

export function parseUpArgs(args: readonly string[]): UpArgs {
  const out: UpArgs = {
    hosts: 3,
    withDocker: true,
    withAgents: true,
    withPlugin: true,
    withContainerAgents: true,
    nodeTimeoutSeconds: 10,
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--no-docker') out.withDocker = false;
    else if (a === '--no-agents') out.withAgents = false;
    else if (a === '--no-plugin') out.withPlugin = false;
    else if (a === '--no-container-agents') out.withContainerAgents = false;
    else if (a === '--node-timeout') {
      const v = Number(args[++i]);
      if (!(v > 0)) throw new ClusterError('USAGE', '--node-timeout needs a positive number of seconds');
      out.nodeTimeoutSeconds = v;
    } else if (a === '--lease-grace') {
      const raw = args[++i];
      const v = Number(raw);
      if (raw === undefined || raw === '' || !Number.isFinite(v) || v < 0) {
        throw new ClusterError('USAGE', '--lease-grace needs a number of seconds (0 or more)');
      }
      out.leaseGraceSeconds = v;
    } else if (a === '--backend') {
      const v = args[++i];
      if (v !== 'loopback' && v !== 'local') throw new ClusterError('USAGE', '--backend needs loopback or local');
      out.backend = v;
    } else if (a !== undefined && /^\d+$/.test(a)) out.hosts = Number(a);
    else throw new ClusterError('USAGE', `unknown argument ${a ?? ''}\n${USAGE}`);
  }
  if (out.hosts < 1 || out.hosts > 26) throw new ClusterError('USAGE', 'N must be 1..26');
  return out;
}

export const FAULTS = ['kill', 'start', 'poweroff', 'poweron', 'partition', 'heal'] as const;
export type FaultKind = (typeof FAULTS)[number];
export interface FaultArgs {
  fault: FaultKind;
  host: string;
}

export function isFault(cmd: string | undefined): cmd is FaultKind {
  return (FAULTS as readonly string[]).includes(cmd ?? '');
}

/** `<fault> <host>`: exactly one host name (a … z). */
export function parseFaultArgs(fault: FaultKind, args: readonly string[]): FaultArgs {
  const [host, ...extra] = args;
  if (host === undefined) throw new ClusterError('USAGE', `${fault} needs a host name (a, b, …)\n${USAGE}`);
  if (!/^[a-z]$/.test(host)) throw new ClusterError('USAGE', `${host} is not a host name (a, b, …)`);
  if (extra.length > 0) throw new ClusterError('USAGE', `${fault} takes one host, got also ${extra.join(' ')}`);
  return { fault, host };
}

/** Applies a fault to a host of a running cluster; returns what happened, for the operator. */
export async function applyFault(cluster: Cluster, { fault, host: name }: FaultArgs): Promise<string> {
  const host = cluster.host(name);
  const needsPower = (): void => {
    if (!host.isPoweredOn())
      throw new ClusterError('POWERED_OFF', `host ${name} is powered off; run: cluster.sh poweron ${name}`);
  };
  switch (fault) {
    case 'kill': {
      needsPower();
      const pids = {
        agent: host.agentPid(),
        plugin: host.pluginPid(),
        dockerd: host.dockerPid(),
        'container agent': host.containerAgentPid(),
      };
      await Promise.all([
        host.killAgent('SIGKILL'),
        host.killPlugin('SIGKILL'),
        host.killDocker('SIGKILL'),
        host.killContainerAgent('SIGKILL'),
      ]);
      const killed = Object.entries(pids).map(([k, pid]) => `${k} ${pid ?? '(not running)'}`);
      return `host ${name}: SIGKILLed ${killed.join(', ')}; its containers and mounts stay (cluster.sh start ${name} restarts the daemons)`;
    }
    case 'start': {
      needsPower();
      const started = await host.startStopped();
      return started.length === 0
        ? `host ${name}: everything was running`
        : `host ${name}: started ${started.join(', ')} (same era)`;
    }
    case 'poweroff':
      if (!host.isPoweredOn()) return `host ${name} is already powered off`;
      await host.powerOff();
      return `host ${name}: powered off (every process killed, its mount namespace gone; loop devices stay attached)`;
    case 'poweron':
      if (host.isPoweredOn())
        throw new ClusterError(
          'POWERED_ON',
          `host ${name} is powered on (use cluster.sh start ${name} for stopped daemons)`,
        );
      await host.powerOn();
      return `host ${name}: powered on, era ${host.era()}, node ${host.nodeUuid() ?? '-'}`;
    case 'partition':
      await host.disconnect();
      return `host ${name}: network cut (processes keep running); cluster.sh heal ${name} reconnects it`;
    case 'heal':
      await host.reconnect();
      return `host ${name}: network reconnected`;
  }
}

async function hostCondition(h: ClusterHost): Promise<string> {
  if (!h.isPoweredOn()) return 'powered off';
  return (await h.linkIsUp()) ? 'up' : 'partitioned';
}

/** status's storage line: which backend, and where its data lives. */
export function backendLine(backend: ClusterBackend, poolDir: string): string {
  return backend === 'local'
    ? `backend   local (btrfs): each host its own file system on its own loop device (pool below), moves copied over mutual TLS on port ${LOCAL_TRANSFER_PORT}`
    : `backend   loopback: one pool shared by every host, ${poolDir}`;
}

/** How the control service sees a node: `alive`, `DEAD since …`, plus its agent's self-fencing state. */
export function controlView(node: Pick<NodeState, 'alive' | 'dead_since' | 'fencing'> | undefined): string {
  if (node === undefined) return 'control: unknown';
  const life = node.alive ? 'alive' : `DEAD${node.dead_since !== undefined ? ` since ${node.dead_since}` : ''}`;
  return `control: ${life}${node.fencing?.state === 'fenced' ? `, self-fenced since ${node.fencing.since}` : ''}`;
}

async function describe(cluster: Cluster): Promise<string> {
  const l = cluster.layout;
  const lines = [
    `cluster dir ${l.baseDir} (slot ${l.slot}); node timeout ${cluster.state.nodeTimeoutSeconds} s, lease grace ${cluster.state.leaseGraceSeconds ?? 'default (5)'} s`,
    backendLine(cluster.backend, l.poolDir),
  ];
  const control = cluster.controlPid();
  let version = '';
  if (control !== undefined) {
    version = await cluster.client.version().then(
      (v) => ` flocker ${v.flocker}`,
      () => ' (not answering)',
    );
  }
  lines.push(
    `control   ${l.controlUrl} (agents use https://${l.controlBridgeAddress}:${l.controlPort}) pid ${control ?? '-'}${version}`,
  );
  // Mutual TLS: the CLI (and curl) need the cluster CA and the API user admin's certificate.
  lines.push(
    `flocker CLI: ${Object.entries(cluster.cliEnv())
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')}`,
  );
  const nodes =
    control === undefined
      ? []
      : await cluster.client.waitForCluster(undefined, 0).then(
          (x) => x.nodes,
          () => [],
        );
  for (const h of cluster.hosts) {
    const seen = controlView(nodes.find((n) => n.uuid === h.nodeUuid()));
    lines.push(
      `host ${h.name}    ${h.address}  ${await hostCondition(h)} (${seen})  node ${h.nodeUuid() ?? '-'}  ` +
        `agent ${h.agentPid() ?? '-'}  plugin ${h.pluginPid() ?? '-'}  dockerd ${h.dockerPid() ?? '-'}  ` +
        `container-agent ${h.containerAgentPid() ?? '-'}  DOCKER_HOST=unix://${h.layout.dockerSocket}` +
        (cluster.backend === 'local' ? `  pool ${h.layout.localPool}` : ''),
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
    case 'flocker': {
      // This repository's CLI as the API user admin: the FLOCKER_* settings status prints.
      const cluster = openCluster(clusterDir());
      const r = spawnSync(process.execPath, [path.join(REPO_ROOT, 'packages/cli/dist/main.js'), ...rest], {
        stdio: 'inherit',
        env: { ...process.env, ...cluster.cliEnv() },
      });
      return r.status ?? 1;
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
    case undefined: // no command: the usage, as for help
    default:
      if (isFault(cmd)) {
        console.log(await applyFault(openCluster(clusterDir()), parseFaultArgs(cmd, rest)));
        return 0;
      }
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
