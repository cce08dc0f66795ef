/**
 * The agent's decision for a local backend (issue 24: `dataset: {backend: local}`), where each
 * dataset's live copy is on one node's own pool and a move is a data transfer the node holding
 * the copy pushes to the new primary (LocalMover). Pure: desired configuration x this node's
 * copies x what the other nodes report -> at most one action per dataset.
 */
import { join } from 'node:path';

export interface LocalCopyHere {
  readonly datasetId: string;
  /** The enforced size; null when none is set yet. */
  readonly size: number | null;
  /** Where this host has it mounted. */
  readonly mountPoints: readonly string[];
}

export interface LocalDesiredDataset {
  readonly datasetId: string;
  readonly primary: string;
  readonly maximumSize: number | null;
  readonly deleted: boolean;
}

export interface LocalClusterNode {
  readonly uuid: string;
  readonly host: string;
  readonly alive: boolean;
  /** The datasets whose live copy the node reports. */
  readonly copies: readonly string[];
}

export interface LocalObservation {
  readonly copies: readonly LocalCopyHere[];
  /** Datasets this node is moving to another node right now. */
  readonly moving: ReadonlySet<string>;
  /** Datasets this pool keeps snapshots (or a retired copy) of without a live copy. */
  readonly retained?: ReadonlySet<string>;
}

export interface LocalDecisionContext {
  readonly nodeUuid: string;
  readonly mountRoot: string;
  readonly defaultSize: number;
}

export type LocalAction =
  | { readonly kind: 'create'; readonly datasetId: string; readonly size: number; readonly mountPath: string }
  | { readonly kind: 'mount'; readonly datasetId: string; readonly mountPath: string }
  | { readonly kind: 'resize'; readonly datasetId: string; readonly size: number }
  | { readonly kind: 'unmount'; readonly datasetId: string; readonly mountPath: string }
  | { readonly kind: 'destroy'; readonly datasetId: string }
  /** The dataset's primary is this node again while its move away runs: take the move back. */
  | { readonly kind: 'cancelMove'; readonly datasetId: string }
  /** After a move away: keep only the newest snapshot (a move back's base), let go of the live copy. */
  | { readonly kind: 'retire'; readonly datasetId: string }
  | {
      /** Push the live copy to the new primary: phase 1 at once, phase 2 once nothing here holds it. */
      readonly kind: 'moveOut';
      readonly datasetId: string;
      readonly to: { readonly uuid: string; readonly host: string };
      readonly size: number;
    }
  | {
      /** Nothing to do but say why: the only copy is on a dead node (never a blank new one). */
      readonly kind: 'refuse';
      readonly datasetId: string;
      readonly code: 'SOURCE_UNREACHABLE';
      readonly message: string;
    };

export function localMountPath(datasetId: string, ctx: LocalDecisionContext): string {
  return join(ctx.mountRoot, datasetId);
}

function sizeOf(d: LocalDesiredDataset, ctx: LocalDecisionContext): number {
  return d.maximumSize ?? ctx.defaultSize;
}

export function calculateLocalChanges(
  datasets: readonly LocalDesiredDataset[],
  nodes: readonly LocalClusterNode[],
  here: LocalObservation,
  ctx: LocalDecisionContext,
): LocalAction[] {
  const copies = new Map(here.copies.map((c) => [c.datasetId, c]));
  const actions: LocalAction[] = [];
  for (const d of [...datasets].sort((x, y) => (x.datasetId < y.datasetId ? -1 : 1))) {
    const action = decide(d, copies.get(d.datasetId), nodes, here, ctx);
    if (action !== null) actions.push(action);
  }
  return actions;
}

function decide(
  d: LocalDesiredDataset,
  copy: LocalCopyHere | undefined,
  nodes: readonly LocalClusterNode[],
  here: LocalObservation,
  ctx: LocalDecisionContext,
): LocalAction | null {
  const datasetId = d.datasetId;
  const mountPath = localMountPath(datasetId, ctx);
  const moving = here.moving.has(datasetId);
  if (d.deleted) {
    if (moving) return null;
    if (copy === undefined) return here.retained?.has(datasetId) === true ? { kind: 'destroy', datasetId } : null;
    const mounted = [...copy.mountPoints].sort()[0];
    return mounted !== undefined ? { kind: 'unmount', datasetId, mountPath: mounted } : { kind: 'destroy', datasetId };
  }
  if (d.primary === ctx.nodeUuid) {
    if (copy !== undefined) {
      // A move away taken back: stopped if it has not reached the release (the mover decides), else it ends first.
      if (moving) return { kind: 'cancelMove', datasetId };
      if (!copy.mountPoints.includes(mountPath)) return { kind: 'mount', datasetId, mountPath };
      const size = sizeOf(d, ctx);
      return copy.size === null || copy.size < size ? { kind: 'resize', datasetId, size } : null;
    }
    // The copy is elsewhere: its node pushes it here (or cannot, if dead). Only no copy anywhere is a new dataset.
    const holders = nodes.filter((n) => n.uuid !== ctx.nodeUuid && n.copies.includes(datasetId));
    if (holders.some((n) => n.alive)) return null;
    const dead = holders[0];
    if (dead !== undefined)
      return {
        kind: 'refuse',
        datasetId,
        code: 'SOURCE_UNREACHABLE',
        message: `the data of dataset ${datasetId} is on node ${dead.uuid} (${dead.host}), which is dead: local storage cannot be moved off a dead node; bring it back, or move the dataset back to it`,
      };
    return { kind: 'create', datasetId, size: sizeOf(d, ctx), mountPath };
  }
  // Another node is the primary: this node pushes its copy there, then lets go of it.
  if (copy === undefined) return null;
  const target = nodes.find((n) => n.uuid === d.primary);
  const mounted = copy.mountPoints.includes(mountPath) ? mountPath : undefined;
  if (moving) {
    // The host's own mount goes at once (containers keep theirs until they stop: the move's release).
    return mounted !== undefined ? { kind: 'unmount', datasetId, mountPath: mounted } : null;
  }
  // The primary holds its live copy already (a mover killed after the promote, before it retired
  // this one): nothing to send, this copy is let go of.
  if (target?.copies.includes(datasetId) === true)
    return mounted !== undefined ? { kind: 'unmount', datasetId, mountPath: mounted } : { kind: 'retire', datasetId };
  if (target?.alive === true)
    return { kind: 'moveOut', datasetId, to: { uuid: target.uuid, host: target.host }, size: sizeOf(d, ctx) };
  return null;
}
