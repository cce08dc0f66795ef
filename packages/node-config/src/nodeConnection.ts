/**
 * How the Docker plugin and the container agent find the control service and their
 * node: command-line overrides, else the dataset agent's agent.yml, its node
 * certificate and `<state_dir>/node.json`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Uuid } from '@flocker/api';
import { z } from 'zod';
import {
  configDirOf,
  controlUrl,
  DEFAULT_CONFIG_PATH,
  DEFAULT_STATE_DIR,
  loadNodeConfig,
  NodeConfigError,
  readNodeTls,
  type ControlCredentials,
  type NodeConfig,
} from './nodeConfig';

export const NODE_FILE = 'node.json';

const NodeFile = z.object({ uuid: Uuid }).loose();

export interface NodeConnectionArgs {
  /** agent.yml; default /etc/flocker/agent.yml. */
  agentConfig?: string | undefined;
  controlUrl?: string | undefined;
  nodeUuid?: string | undefined;
  stateDir?: string | undefined;
  /** Seconds to wait for the dataset agent to write node.json (default 60). */
  nodeWait?: number | undefined;
}

export interface NodeConnection {
  controlUrl: string;
  /** HTTPS with the node's certificate; absent = plain HTTP. */
  tls?: ControlCredentials;
  /** Canonical (lower case), as the control service stores and answers it. */
  nodeUuid: string;
  stateDir: string;
  /** agent.yml, when it was read (absent: not needed and not there). */
  config?: NodeConfig;
}

/** Wait (bounded) for the dataset agent to create `<stateDir>/node.json`, and read the UUID. */
export async function waitForNodeUuid(stateDir: string, timeoutMs: number): Promise<string> {
  const file = join(stateDir, NODE_FILE);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const parsed = NodeFile.safeParse(JSON.parse(readFileSync(file, 'utf8')));
      if (parsed.success) return parsed.data.uuid;
    } catch {
      // Not there yet (or half written): try again.
    }
    if (Date.now() >= deadline) {
      throw new NodeConfigError(
        'NODE_UNKNOWN',
        `${file} did not appear within ${Math.round(timeoutMs / 1000)} s; start flocker-dataset-agent first or pass --node-uuid.`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * agent.yml is needed unless --control-url and one of --state-dir/--node-uuid are given;
 * when it is not needed it is still read (for the settings it carries) if it exists.
 * A file that exists but is invalid is always an error.
 */
function readOptionalConfig(file: string, required: boolean): NodeConfig | undefined {
  try {
    return loadNodeConfig(file);
  } catch (err) {
    if (!required && err instanceof NodeConfigError && err.code === 'CONFIG_NOT_FOUND') return undefined;
    throw err;
  }
}

export async function resolveNodeConnection(args: NodeConnectionArgs): Promise<NodeConnection> {
  const needsYaml = args.controlUrl === undefined || (args.stateDir === undefined && args.nodeUuid === undefined);
  const file = args.agentConfig ?? DEFAULT_CONFIG_PATH;
  const config = needsYaml || args.agentConfig !== undefined ? readOptionalConfig(file, needsYaml) : undefined;
  const cs = config?.['control-service'];
  const tls = cs === undefined ? undefined : readNodeTls(cs, configDirOf(file));
  const url = args.controlUrl ?? (cs === undefined ? undefined : controlUrl(cs, tls !== undefined));
  if (!url)
    throw new NodeConfigError('CONFIG_INVALID', 'no control service address: pass --agent-config or --control-url');
  const stateDir = args.stateDir ?? config?.node.state_dir ?? DEFAULT_STATE_DIR;
  // With a node certificate, the certificate is the node's identity.
  const given = args.nodeUuid ?? tls?.nodeUuid ?? (await waitForNodeUuid(stateDir, (args.nodeWait ?? 60) * 1000));
  const parsedUuid = Uuid.safeParse(given);
  if (!parsedUuid.success) throw new NodeConfigError('CONFIG_INVALID', `--node-uuid ${given} is not a UUID`);
  // Canonical (lower case), as the control service stores and answers it: comparisons with snapshots hold.
  const nodeUuid = parsedUuid.data;
  if (tls && nodeUuid !== tls.nodeUuid) {
    throw new NodeConfigError(
      'CONFIG_INVALID',
      `--node-uuid ${nodeUuid} is not the node named by the certificate (${tls.nodeUuid}).`,
    );
  }
  return { controlUrl: url, ...(tls ? { tls } : {}), nodeUuid, stateDir, ...(config ? { config } : {}) };
}
