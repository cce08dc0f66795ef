/**
 * Where the plugin finds the control service and its node identity: the dataset
 * agent's /etc/flocker/agent.yml and `<state_dir>/node.json`, with overrides.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Uuid } from '@flocker/api';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { VolumePluginError } from './protocol';
import { DEFAULT_VOLUME_SIZE, parseSize } from './volumeOptions';

export const DEFAULT_AGENT_CONFIG = '/etc/flocker/agent.yml';
export const DEFAULT_SOCKET = '/run/docker/plugins/flocker.sock';
export const DEFAULT_STATE_DIR = '/var/lib/flocker/agent';
export const DEFAULT_MOUNT_TIMEOUT_MS = 100_000;
export const NODE_FILE = 'node.json';
export const MOUNTS_FILE = 'plugin-mounts.json';

/** Only the parts of agent.yml the plugin needs; the rest belongs to the agent. */
const AgentYaml = z
  .object({
    'control-service': z.object({ hostname: z.string().min(1), port: z.number().int().min(1).max(65535).default(4523) }).loose(),
    node: z.object({ state_dir: z.string().min(1).optional() }).loose().optional(),
  })
  .loose();

const NodeFile = z.object({ uuid: Uuid }).loose();

export interface PluginSettings {
  controlUrl: string;
  nodeUuid: string;
  socketPath: string;
  stateDir: string;
  mountTimeoutMs: number;
  defaultSize: number;
}

export interface PluginArgs {
  agentConfig?: string;
  controlUrl?: string;
  nodeUuid?: string;
  socket?: string;
  stateDir?: string;
  /** Seconds. */
  mountTimeout?: number;
  defaultSize?: string;
  /** Seconds to wait for the agent to write node.json. */
  nodeWait?: number;
}

export function readAgentYaml(file: string): { controlUrl: string; stateDir?: string } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new VolumePluginError('CONFIG_UNREADABLE', `cannot read the agent configuration ${file}: ${(err as Error).message}`);
  }
  const parsed = AgentYaml.safeParse(parseYaml(text));
  if (!parsed.success) {
    throw new VolumePluginError('CONFIG_INVALID', `${file} is invalid: ${z.prettifyError(parsed.error)}`);
  }
  const cs = parsed.data['control-service'];
  const host = cs.hostname.includes(':') ? `[${cs.hostname}]` : cs.hostname;
  const stateDir = parsed.data.node?.state_dir;
  return { controlUrl: `http://${host}:${cs.port}`, ...(stateDir ? { stateDir } : {}) };
}

/** Wait (bounded) for the dataset agent to create `<stateDir>/node.json`, and read the UUID. */
export async function waitForNodeUuid(stateDir: string, timeoutMs: number): Promise<string> {
  const file = path.join(stateDir, NODE_FILE);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const parsed = NodeFile.safeParse(JSON.parse(fs.readFileSync(file, 'utf8')));
      if (parsed.success) return parsed.data.uuid;
    } catch {
      // Not there yet (or half written): try again.
    }
    if (Date.now() >= deadline) {
      throw new VolumePluginError(
        'NODE_UNKNOWN',
        `${file} did not appear within ${Math.round(timeoutMs / 1000)} s; start flocker-dataset-agent first or pass --node-uuid.`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function resolveSettings(args: PluginArgs): Promise<PluginSettings> {
  const needsYaml = args.controlUrl === undefined || (args.stateDir === undefined && args.nodeUuid === undefined);
  const fromYaml = needsYaml || args.agentConfig !== undefined ? tryAgentYaml(args.agentConfig ?? DEFAULT_AGENT_CONFIG, needsYaml) : undefined;
  const controlUrl = args.controlUrl ?? fromYaml?.controlUrl;
  if (!controlUrl) throw new VolumePluginError('CONFIG_INVALID', 'no control service address: pass --agent-config or --control-url');
  const stateDir = args.stateDir ?? fromYaml?.stateDir ?? DEFAULT_STATE_DIR;
  const nodeUuid = args.nodeUuid ?? (await waitForNodeUuid(stateDir, (args.nodeWait ?? 60) * 1000));
  if (!Uuid.safeParse(nodeUuid).success) throw new VolumePluginError('CONFIG_INVALID', `--node-uuid ${nodeUuid} is not a UUID`);
  return {
    controlUrl,
    nodeUuid,
    stateDir,
    socketPath: args.socket ?? DEFAULT_SOCKET,
    mountTimeoutMs: (args.mountTimeout ?? DEFAULT_MOUNT_TIMEOUT_MS / 1000) * 1000,
    defaultSize: args.defaultSize === undefined ? DEFAULT_VOLUME_SIZE : parseSize(args.defaultSize),
  };
}

function tryAgentYaml(file: string, required: boolean): { controlUrl: string; stateDir?: string } | undefined {
  try {
    return readAgentYaml(file);
  } catch (err) {
    if (required) throw err;
    return undefined;
  }
}
