/**
 * Node identity: a UUID created once and kept in `<state_dir>/node.json`
 * (the Docker plugin on the same host reads the same file), and the era,
 * which changes with every boot.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { Uuid, writeFileDurableSync, type DurableSyncOps } from '@flocker/api';
import { AgentError } from './errors';

export const NODE_IDENTITY_FILE = 'node.json';
export const BOOT_ID_PATH = '/proc/sys/kernel/random/boot_id';

const NodeIdentityFile = z.object({ uuid: Uuid }).loose();
export type NodeIdentity = { uuid: string };

/** The node identity kept in stateDir, or null when none was created yet. */
export function readNodeIdentity(stateDir: string): NodeIdentity | null {
  const path = join(stateDir, NODE_IDENTITY_FILE);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new AgentError('IDENTITY_INVALID', `cannot read ${path}: ${(e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new AgentError('IDENTITY_INVALID', `${path} is not JSON; remove it only if this node never held datasets`);
  }
  const parsed = NodeIdentityFile.safeParse(doc);
  if (!parsed.success) throw new AgentError('IDENTITY_INVALID', `${path} has no valid "uuid"`);
  return { uuid: parsed.data.uuid };
}

/** Read the identity, creating it atomically (write temp, fsync, rename) on first start. */
export function ensureNodeIdentity(stateDir: string, newUuid: () => string = randomUUID): NodeIdentity {
  const existing = readNodeIdentity(stateDir);
  if (existing) return existing;
  return writeNodeIdentity(stateDir, { uuid: newUuid() });
}

/**
 * Write node.json atomically: temp file, every byte, fsync, rename, fsync of the
 * directory. A failure (a full disk) throws and leaves the old file and no temp file.
 */
export function writeNodeIdentity(stateDir: string, identity: NodeIdentity, ops?: DurableSyncOps): NodeIdentity {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  writeFileDurableSync(join(stateDir, NODE_IDENTITY_FILE), JSON.stringify(identity) + '\n', {
    mode: 0o644,
    ...(ops !== undefined ? { ops } : {}),
  });
  return identity;
}

/** The boot id, or the content of eraFile when simulating hosts that can "reboot". */
export function readEra(eraFile?: string): string {
  const path = eraFile ?? BOOT_ID_PATH;
  let era: string;
  try {
    era = readFileSync(path, 'utf8').trim();
  } catch (e) {
    throw new AgentError('IDENTITY_INVALID', `cannot read the era from ${path}: ${(e as Error).message}`);
  }
  if (era.length === 0) throw new AgentError('IDENTITY_INVALID', `${path} is empty; it must hold the era`);
  return era;
}

const TimingFile = z.object({ node_timeout_seconds: z.number().positive() }).strict();

/**
 * The control service's node timeout as last learned, kept in the state
 * directory: an agent restarted while cut off still knows its self-fence bound.
 * undefined when never learned or unreadable (then it is learned at first contact).
 */
export function readLastNodeTimeout(stateDir: string): number | undefined {
  try {
    const parsed = TimingFile.safeParse(JSON.parse(readFileSync(join(stateDir, 'timing.json'), 'utf8')));
    return parsed.success ? parsed.data.node_timeout_seconds : undefined;
  } catch {
    return undefined;
  }
}

/** Keeps the node timeout in state_dir (durably, like node.json); throws when it cannot (the caller only warns). */
export function writeLastNodeTimeout(stateDir: string, seconds: number, ops?: DurableSyncOps): void {
  mkdirSync(stateDir, { recursive: true });
  writeFileDurableSync(join(stateDir, 'timing.json'), JSON.stringify({ node_timeout_seconds: seconds }) + '\n', {
    mode: 0o644,
    ...(ops !== undefined ? { ops } : {}),
  });
}
