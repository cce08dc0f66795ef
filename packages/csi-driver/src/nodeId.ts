/** This node's Flocker UUID: given, else the dataset agent's <state_dir>/node.json, else the node certificate's common name. */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { identityFromCommonName, Uuid } from '@flocker/api';
import { z } from 'zod';

const NodeFile = z.object({ uuid: Uuid }).loose();

export class NodeIdError extends Error {
  override readonly name = 'NodeIdError';
  readonly code = 'NODE_ID_UNKNOWN';
}

/** The common name's node UUID of a PEM certificate (node-<uuid>), if it is a node certificate. */
export function nodeUuidOfCertificate(pem: string): string | undefined {
  const subject = new X509Certificate(pem).subject;
  const cn = subject
    .split('\n')
    .find((l) => l.startsWith('CN='))
    ?.slice(3);
  const identity = cn === undefined ? undefined : identityFromCommonName(cn);
  return identity?.kind === 'node' ? identity.uuid : undefined;
}

export interface NodeIdSources {
  nodeId?: string;
  stateDir?: string;
  certFile?: string;
  /** How long to wait for the agent to write node.json. */
  waitMs?: number;
}

export async function resolveNodeId(src: NodeIdSources): Promise<string> {
  if (src.nodeId !== undefined) {
    const parsed = Uuid.safeParse(src.nodeId);
    if (!parsed.success) throw new NodeIdError(`--node-id ${src.nodeId} is not a UUID`);
    return parsed.data;
  }
  if (src.certFile !== undefined) {
    const uuid = nodeUuidOfCertificate(await readFile(src.certFile, 'utf8'));
    if (uuid !== undefined) return uuid;
  }
  if (src.stateDir !== undefined) {
    const file = join(src.stateDir, 'node.json');
    const deadline = Date.now() + (src.waitMs ?? 60_000);
    for (;;) {
      try {
        const parsed = NodeFile.safeParse(JSON.parse(await readFile(file, 'utf8')));
        if (parsed.success) return parsed.data.uuid;
      } catch {
        // Not written yet.
      }
      if (Date.now() >= deadline)
        throw new NodeIdError(`${file} did not appear: start flocker-dataset-agent first or pass --node-id`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  throw new NodeIdError(
    'no node id: pass --node-id, --state-dir (the agent writes node.json there) or a node certificate',
  );
}
