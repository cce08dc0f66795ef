#!/usr/bin/env node
/** flocker-docker-plugin: the Docker volume plugin of Flocker. */
import { errorMessage } from '@flocker/runtime';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { argsFromEnv, resolveSettings } from './config';
import { createLogger, startVolumePlugin } from './startVolumePlugin';
import { KNOWN_OPTIONS } from './volumeOptions';

async function main(): Promise<void> {
  // A managed plugin is configured by environment variables (config.json, docker plugin set); flags win.
  const env = argsFromEnv(process.env);
  const argv = await yargs(hideBin(process.argv))
    .scriptName('flocker-docker-plugin')
    .usage(
      '$0 [options]\n\nServe Docker volume driver requests on a Unix socket, backed by the Flocker control service.',
    )
    .epilog(
      `Volume options (docker volume create -d flocker -o KEY=VALUE): ${KNOWN_OPTIONS.join(', ')}. replicas=1 keeps a standby replica on another node (local storage only; 0 or 1).`,
    )
    .option('agent-config', {
      type: 'string',
      describe: 'dataset agent configuration (control service address, node.state_dir)',
      default: env.agentConfig ?? '/etc/flocker/agent.yml',
    })
    .option('control-url', {
      type: 'string',
      describe: 'control service URL, e.g. http://10.0.0.1:4523 (overrides agent.yml)',
      default: env.controlUrl,
    })
    .option('ca-file', {
      type: 'string',
      describe: "cluster CA certificate (with --cert-file and --key-file: instead of agent.yml's)",
      default: env.caFile,
    })
    .option('cert-file', { type: 'string', describe: "this node's certificate", default: env.certFile })
    .option('key-file', { type: 'string', describe: "this node's private key", default: env.keyFile })
    .option('propagated-mount', {
      type: 'string',
      describe:
        'managed plugin: its config.json propagatedMount; volumes are bound there from --host-mount-seen-at and answered as paths there',
      default: env.propagatedMount,
    })
    .option('host-mount-seen-at', {
      type: 'string',
      describe: "managed plugin: where the host's mount root (the agent's mount_root) is mounted in the plugin",
      default: env.hostMountSeenAt,
    })
    .option('host-mount-root', {
      type: 'string',
      describe: "managed plugin: the agent's mount root on the host (default: node.mount_root of agent.yml)",
      default: env.hostMountRoot,
    })
    .option('node-uuid', { type: 'string', describe: "this node's UUID (default: read from <state-dir>/node.json)" })
    .option('socket', {
      type: 'string',
      describe: 'plugin socket; its basename is the driver name unless --driver-name',
      default: '/run/docker/plugins/flocker.sock',
    })
    .option('state-dir', {
      type: 'string',
      describe: 'directory of node.json and plugin-mounts.json (default: node.state_dir of agent.yml)',
      default: env.stateDir,
    })
    .option('mount-timeout', {
      type: 'number',
      describe:
        'seconds Mount waits for the volume (Docker gives up at 120; default: plugin.mount_timeout_seconds of agent.yml, else 100)',
    })
    .option('default-size', { type: 'string', describe: 'size of volumes created without -o size', default: '10GiB' })
    .option('node-wait', {
      type: 'number',
      describe: 'seconds to wait at start for the agent to write node.json',
      default: 60,
    })
    .option('docker-socket', {
      type: 'string',
      describe:
        'this host\'s dockerd API socket, to reconcile mounts with the containers it runs ("none": off; default: node.docker_socket of agent.yml, else /var/run/docker.sock)',
      default: env.dockerSocket,
    })
    .option('reconcile-interval', {
      type: 'number',
      describe:
        'seconds between reconciles with dockerd (0: only when dockerd (re)appears; default: plugin.reconcile_interval_seconds of agent.yml, else 30)',
    })
    .option('driver-name', {
      type: 'string',
      describe:
        'the driver name Docker uses for this plugin, when not the socket\'s basename (a spec file, a managed plugin "flocker:latest"); default: the socket\'s basename less .sock',
    })
    .option('mount-safety-window', {
      type: 'number',
      describe:
        'seconds a mount ID (or a created container) counts as in use whatever Docker shows (default: plugin.mount_safety_window_seconds of agent.yml, else 60)',
    })
    .option('idle-lease-seconds', {
      type: 'number',
      describe:
        'seconds a volume no container here uses keeps its lease, so the next container here starts without taking it; let go of at once when another host, a move or a delete asks for it (0: released after the last container; default: plugin.idle_lease_seconds of agent.yml, else 60)',
    })
    .option('metrics-address', {
      type: 'string',
      describe: 'address of the metrics and health listener (default: metrics.address of agent.yml, else 127.0.0.1)',
    })
    .option('metrics-port', {
      type: 'number',
      describe:
        'port of the metrics and health listener, 0 = none (default: metrics.plugin_port of agent.yml, else 4532)',
    })
    .strict()
    .help()
    .parseAsync();
  const logger = createLogger();
  const settings = await resolveSettings({
    agentConfig: argv['agent-config'],
    controlUrl: argv['control-url'],
    nodeUuid: argv['node-uuid'],
    socket: argv.socket,
    stateDir: argv['state-dir'],
    mountTimeout: argv['mount-timeout'],
    defaultSize: argv['default-size'],
    nodeWait: argv['node-wait'],
    dockerSocket: argv['docker-socket'],
    reconcileInterval: argv['reconcile-interval'],
    mountSafetyWindow: argv['mount-safety-window'],
    idleLeaseSeconds: argv['idle-lease-seconds'],
    metricsAddress: argv['metrics-address'],
    metricsPort: argv['metrics-port'],
    caFile: argv['ca-file'],
    certFile: argv['cert-file'],
    keyFile: argv['key-file'],
    propagatedMount: argv['propagated-mount'],
    hostMountSeenAt: argv['host-mount-seen-at'],
    hostMountRoot: argv['host-mount-root'],
  });
  const driverName = argv['driver-name'];
  const plugin = await startVolumePlugin({
    ...settings,
    logger,
    ...(driverName !== undefined && driverName !== '' ? { driverName } : {}),
  });
  const stop = (signal: string) => {
    logger.info('stopping', { signal });
    plugin.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  const code = typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : 'FATAL';
  process.stderr.write(`flocker-docker-plugin: ${errorMessage(err)} (${code})\n`);
  process.exit(1);
});
