/**
 * The cluster's state file (`<baseDir>/cluster.json`): enough to find and tear
 * down everything later, from another process (the CLI) or after a crash.
 */
import * as fs from 'node:fs';
import { z } from 'zod';
import { ClusterError } from './run';

export const ClusterStateFile = z
  .object({
    version: z.literal(1),
    slot: z.number().int().nonnegative(),
    baseDir: z.string().min(1),
    hosts: z.number().int().positive(),
    withDocker: z.boolean(),
    withAgents: z.boolean(),
    withPlugin: z.boolean(),
    /** A flocker-container-agent per host (cluster.sh up's default); absent: none (e2e suites start their own). */
    withContainerAgents: z.boolean().optional(),
    nodeTimeoutSeconds: z.number().positive(),
    /** flocker-control --lease-grace; absent: not passed (the control service's default, 5 s). */
    leaseGraceSeconds: z.number().nonnegative().optional(),
    /** The hosts' storage (layout.ts ClusterBackend); absent: loopback (as every cluster.json before it was added). */
    backend: z.enum(['loopback', 'local']).optional(),
    createdAt: z.string(),
    /** Remove baseDir on stop (it was a temporary directory). */
    removeBaseDir: z.boolean(),
  })
  .strict();
export type ClusterStateFile = z.infer<typeof ClusterStateFile>;

export function writeState(file: string, state: ClusterStateFile): void {
  fs.writeFileSync(file + '.tmp', JSON.stringify(state, null, 2) + '\n');
  fs.renameSync(file + '.tmp', file);
}

export function readState(file: string): ClusterStateFile | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const parsed = ClusterStateFile.safeParse(JSON.parse(text));
  if (!parsed.success) {
    throw new ClusterError('STATE_INVALID', `${file} is not a cluster state file: ${z.prettifyError(parsed.error)}`);
  }
  return parsed.data;
}
