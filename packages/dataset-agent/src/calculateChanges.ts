/**
 * The agent's decision: desired configuration x discovered state -> actions.
 * Pure; at most one action per dataset per call (the loop re-observes after
 * every action, so each decision is made on fresh facts).
 */
import { join } from 'node:path';
import type { GrowPending } from '@flocker/api';
import type { Action, DecisionContext, DesiredDataset, DesiredState, DiscoveredVolume, LocalState } from './LocalState';
import { snapshotActionFor } from './snapshotChanges';

/** What this node should do with a dataset. */
export type Role = 'primary' | 'elsewhere' | 'deleted';

/** Where the dataset's volume is, seen from this node. */
export type Discovered =
  | 'none' //             no volume for the dataset in the pool
  | 'unattached'
  | 'elsewhereLive' //    attached to another instance whose node is alive or unknown
  | 'elsewhereDead' //    attached to an instance whose node is declared dead
  | 'hereUnknown' //      attached here, device not (yet) known
  | 'hereNoFs'
  | 'hereFs' //           has a filesystem, mounted nowhere
  | 'mounted'; //         mounted somewhere on this host

type Step =
  | 'none'
  | 'wait'
  | 'create'
  | 'attach'
  | 'forceDetach'
  | 'format'
  | 'mount'
  | 'mounted' //            converged: make sure it is at our path and big enough
  | 'unmount'
  | 'detach'
  | 'destroyIfOwner' //     unattached: the primary (or anyone, if the primary is gone) destroys
  | 'forceDetachIfOwner'
  | 'destroyHere'; //       detach from us, then destroy

// The whole state machine. Rows: role; columns: discovered state (each row in two lines: the volume not
// attached here, then attached here).
// prettier-ignore
export const TRANSITIONS: Readonly<Record<Role, Readonly<Record<Discovered, Step>>>> = {
  primary: {
    none: 'create', unattached: 'attach',         elsewhereLive: 'wait', elsewhereDead: 'forceDetach',
    hereUnknown: 'wait', hereNoFs: 'format',      hereFs: 'mount',       mounted: 'mounted',
  },
  elsewhere: {
    none: 'none',   unattached: 'none',           elsewhereLive: 'none', elsewhereDead: 'none',
    hereUnknown: 'wait', hereNoFs: 'detach',      hereFs: 'detach',      mounted: 'unmount',
  },
  deleted: {
    none: 'none',   unattached: 'destroyIfOwner', elsewhereLive: 'none', elsewhereDead: 'forceDetachIfOwner',
    hereUnknown: 'wait', hereNoFs: 'destroyHere', hereFs: 'destroyHere', mounted: 'unmount',
  },
};

export function roleOf(dataset: DesiredDataset, nodeUuid: string): Role {
  if (dataset.deleted) return 'deleted';
  return dataset.primary === nodeUuid ? 'primary' : 'elsewhere';
}

/** Round up to the backend's unit. */
export function desiredSize(dataset: DesiredDataset, ctx: DecisionContext): number {
  const size = dataset.maximumSize ?? ctx.defaultSize;
  return Math.ceil(size / ctx.allocationUnit) * ctx.allocationUnit;
}

export function mountPathOf(datasetId: string, ctx: DecisionContext): string {
  return join(ctx.mountRoot, datasetId);
}

/**
 * The volume that counts for a dataset when the pool (wrongly) holds several:
 * the one attached here, else one attached anywhere, else the lowest id.
 * Other volumes claiming the same dataset are ignored, never touched.
 */
export function canonicalVolume(
  volumes: readonly DiscoveredVolume[],
  instanceId: string,
): DiscoveredVolume | undefined {
  const rank = (v: DiscoveredVolume): number => (v.attachedTo === instanceId ? 0 : v.attachedTo !== null ? 1 : 2);
  return [...volumes].sort((a, b) => rank(a) - rank(b) || (a.blockdeviceId < b.blockdeviceId ? -1 : 1))[0];
}

export function discoveredOf(
  volume: DiscoveredVolume | undefined,
  local: LocalState,
  deadInstances: ReadonlySet<string>,
): Discovered {
  if (volume === undefined) return 'none';
  if (volume.attachedTo === null) return 'unattached';
  if (volume.attachedTo !== local.instanceId) {
    return deadInstances.has(volume.attachedTo) ? 'elsewhereDead' : 'elsewhereLive';
  }
  if (volume.devicePath === undefined || volume.hasFilesystem === undefined) return 'hereUnknown';
  if ((volume.mountPoints ?? []).length > 0) return 'mounted';
  return volume.hasFilesystem ? 'hereFs' : 'hereNoFs';
}

/**
 * The offline grow of an ext4 file system smaller than its grown volume: its online growth refused (no
 * CAP_SYS_RESOURCE), or found so at the agent's first look (a refusal before a restart, or an older agent's leftover:
 * a volume grown under an agent without the offline grow). The agent's own mount is the only one while the volume
 * stays on this node, so without this it grew only at a move.
 */
export interface OfflineGrowDecision {
  /**
   * Datasets mounted here whose file system is smaller than its grown volume: online growth refused, or found smaller
   * at the first look (findPendingGrows; short by no more than mke2fs and resize2fs leave off is not smaller).
   */
  readonly pending: ReadonlySet<string>;
  /** Datasets with a lease on any node: in use (a container or pod), never unmounted for a grow. */
  readonly leased: ReadonlySet<string>;
}

/**
 * A driver that extends only a volume it may detach (Cinder `extend_attached: reattach`: detach, extend, attach):
 * a mounted volume is resized with the agent's own mount taken off around it, never while a lease is on it.
 */
export interface UnmountedResizeDecision {
  /** Datasets with a lease on any node: in use (a container or pod), their grow waits. */
  readonly leased: ReadonlySet<string>;
}

export type GrowingDecisionContext = DecisionContext & {
  readonly offlineGrow?: OfflineGrowDecision;
  readonly resizeUnmounted?: UnmountedResizeDecision;
};

/**
 * Datasets mounted here whose grow waits for their lease to go (the driver must detach to extend): what the agent
 * says to the user instead of trying (a detach under a container would fail DEVICE_BUSY, or worse).
 */
export function resizesWaiting(desired: DesiredState, local: LocalState, ctx: GrowingDecisionContext): string[] {
  const unmounted = ctx.resizeUnmounted;
  if (!ctx.canResize || unmounted === undefined) return [];
  return desired.datasets
    .filter((d) => {
      if (d.deleted || d.primary !== ctx.nodeUuid || !unmounted.leased.has(d.datasetId)) return false;
      const volume = canonicalVolume(
        local.volumes.filter((v) => v.datasetId === d.datasetId),
        local.instanceId,
      );
      return (
        volume !== undefined &&
        volume.attachedTo === local.instanceId &&
        (volume.mountPoints ?? []).includes(mountPathOf(d.datasetId, ctx)) &&
        volume.size < desiredSize(d, ctx)
      );
    })
    .map((d) => d.datasetId)
    .sort();
}

/**
 * The grow_pending a mounted volume's report carries (TN F3): the waits the decision keeps are reported, not worked
 * out again. `offlinePending`: the offline grow's datasets (OfflineGrowDecision.pending: the block device grown, the
 * file system not); `detachWaiting`: resizesWaiting's (the backend grows it only detached, a lease on it). Only a
 * volume mounted at its own path here: anywhere else the mount step grows its file system first.
 */
export function growPendingOf(
  datasetId: string,
  mountedHere: boolean,
  offlinePending: ReadonlySet<string>,
  detachWaiting: ReadonlySet<string>,
): GrowPending | undefined {
  if (!mountedHere) return undefined;
  if (offlinePending.has(datasetId)) return { reason: 'online_resize_refused' };
  if (detachWaiting.has(datasetId)) return { reason: 'detach_required' };
  return undefined;
}

/** Whether some dataset of `datasets` had a lease in `before` and has none in `after` (its last user went). */
export function leaseGone(
  before: { readonly leases: readonly { readonly dataset_id: string }[] },
  after: { readonly leases: readonly { readonly dataset_id: string }[] },
  datasets: ReadonlySet<string>,
): boolean {
  const now = new Set(after.leases.map((l) => l.dataset_id));
  return before.leases.some((l) => datasets.has(l.dataset_id) && !now.has(l.dataset_id));
}

export function calculateChanges(desired: DesiredState, local: LocalState, ctx: GrowingDecisionContext): Action[] {
  // An instance is dead only if no live node reports it: a dead ghost node claiming a
  // live node's instance must never get that node's volumes force-detached.
  const liveInstances = new Set(desired.nodes.filter((n) => n.alive).map((n) => n.instanceId));
  const deadInstances = new Set(
    desired.nodes
      .filter((n) => !n.alive && n.instanceId !== local.instanceId && !liveInstances.has(n.instanceId))
      .map((n) => n.instanceId),
  );
  const liveNodes = new Set(desired.nodes.filter((n) => n.alive).map((n) => n.uuid));
  const byDataset = new Map<string, DiscoveredVolume[]>();
  for (const v of local.volumes) {
    const list = byDataset.get(v.datasetId) ?? [];
    list.push(v);
    byDataset.set(v.datasetId, list);
  }

  // A dataset with an unreadable volume record is left alone (its volume may hold the data);
  // a record nothing attributes may be any dataset's, so no create at all while it is there.
  const unreadable = local.unreadable ?? [];
  const held = new Set(unreadable.flatMap((u) => (u.datasetId !== undefined ? [u.datasetId] : [])));
  const unattributed = unreadable.some((u) => u.datasetId === undefined);

  const actions: Action[] = [];
  const datasets = [...desired.datasets].sort((a, b) => (a.datasetId < b.datasetId ? -1 : 1));
  for (const dataset of datasets) {
    if (held.has(dataset.datasetId)) continue;
    const claims = byDataset.get(dataset.datasetId) ?? [];
    const volume = canonicalVolume(claims, local.instanceId);
    // An extra volume mounted over the dataset's path would hide its data: take it off first.
    const mountPath = mountPathOf(dataset.datasetId, ctx);
    const stacked = claims.find((v) => v !== volume && (v.mountPoints ?? []).includes(mountPath));
    if (stacked) {
      actions.push({ kind: 'unmount', datasetId: dataset.datasetId, blockdeviceId: stacked.blockdeviceId, mountPath });
      continue;
    }
    const role = roleOf(dataset, ctx.nodeUuid);
    const discovered = discoveredOf(volume, local, deadInstances);
    const step = TRANSITIONS[role][discovered];
    if (step === 'create' && unattributed) continue;
    // The volume's own step first; snapshots only once it needs nothing (or only waits).
    const action =
      actionFor(step, dataset, volume, ctx, liveNodes) ??
      snapshotActionFor(dataset, volume, discovered, desired, local, ctx);
    if (action) actions.push(action);
  }
  return actions;
}

function actionFor(
  step: Step,
  dataset: DesiredDataset,
  volume: DiscoveredVolume | undefined,
  ctx: GrowingDecisionContext,
  liveNodes: ReadonlySet<string>,
): Action | null {
  const datasetId = dataset.datasetId;
  if (step === 'none' || step === 'wait') return null;
  if (step === 'create') {
    const profile = dataset.profile !== undefined ? { profile: dataset.profile } : {};
    const source = dataset.sourceSnapshotId !== undefined ? { sourceSnapshotId: dataset.sourceSnapshotId } : {};
    return { kind: 'create', datasetId, size: desiredSize(dataset, ctx), ...profile, ...source };
  }
  // Every other step is about an existing volume.
  if (volume === undefined) return null;
  const blockdeviceId = volume.blockdeviceId;
  const owner = dataset.primary === ctx.nodeUuid || !liveNodes.has(dataset.primary);
  switch (step) {
    case 'attach':
      return { kind: 'attach', datasetId, blockdeviceId };
    case 'forceDetach':
      return { kind: 'forceDetach', datasetId, blockdeviceId, fromInstance: volume.attachedTo ?? '' };
    case 'forceDetachIfOwner':
      return owner ? { kind: 'forceDetach', datasetId, blockdeviceId, fromInstance: volume.attachedTo ?? '' } : null;
    case 'format':
      if (dataset.restoreFrom !== undefined) return restoreAction(dataset, volume, ctx);
      // A clone holds its snapshot's file system: never formatted (a blank-looking one needs a person).
      if (dataset.sourceSnapshotId !== undefined) return null;
      return volume.devicePath !== undefined && volume.hasFilesystem === false
        ? {
            kind: 'format',
            datasetId,
            blockdeviceId,
            devicePath: volume.devicePath,
            ...(dataset.filesystem !== undefined ? { filesystem: dataset.filesystem } : {}),
          }
        : null;
    case 'mount':
    case 'mounted': {
      // Not mounted yet: the restore may have been cut off after writing the file system (a kill): redone.
      if (step === 'mount' && dataset.restoreFrom !== undefined) return restoreAction(dataset, volume, ctx);
      if (volume.devicePath === undefined) return null;
      const mountPath = mountPathOf(datasetId, ctx);
      if (!(volume.mountPoints ?? []).includes(mountPath)) {
        return { kind: 'mount', datasetId, blockdeviceId, devicePath: volume.devicePath, mountPath, size: volume.size };
      }
      const size = desiredSize(dataset, ctx);
      if (ctx.canResize && volume.size < size) {
        const resize = { kind: 'resize', datasetId, blockdeviceId, devicePath: volume.devicePath, size } as const;
        // The driver must detach to extend: only with no lease (never under a container); else it waits (resizesWaiting).
        const unmounted = ctx.resizeUnmounted;
        if (unmounted === undefined) return resize;
        return unmounted.leased.has(datasetId) ? null : { ...resize, unmounted: true };
      }
      // The device is grown, its file system not (online refused): again once no lease is on it (the grow then
      // unmounts, grows and mounts again: see executeAction). Only with a driver that resizes: without resizeVolume
      // the resize step does nothing, the dataset stays pending, and every decision would yield it again.
      const grow = ctx.offlineGrow;
      return ctx.canResize && grow !== undefined && grow.pending.has(datasetId) && !grow.leased.has(datasetId)
        ? { kind: 'resize', datasetId, blockdeviceId, devicePath: volume.devicePath, size: volume.size }
        : null;
    }
    case 'unmount': {
      const mountPath = [...(volume.mountPoints ?? [])].sort()[0];
      return mountPath !== undefined ? { kind: 'unmount', datasetId, blockdeviceId, mountPath } : null;
    }
    case 'detach':
      return { kind: 'detach', datasetId, blockdeviceId };
    case 'destroyIfOwner':
      return owner ? { kind: 'destroy', datasetId, blockdeviceId, detachFirst: false } : null;
    case 'destroyHere':
      return { kind: 'destroy', datasetId, blockdeviceId, detachFirst: true };
  }
}

/**
 * A restore not yet done (issue 20), of a volume attached here and not mounted: write the
 * backup and mount in one action. Whatever the device holds now (nothing, or the part of the
 * backup a killed run wrote) is written over; only a restore ever wrote to it, so what it did
 * not write still reads as zeros.
 */
function restoreAction(dataset: DesiredDataset, volume: DiscoveredVolume, ctx: DecisionContext): Action | null {
  if (dataset.restoreFrom === undefined || volume.devicePath === undefined) return null;
  return {
    kind: 'restore',
    datasetId: dataset.datasetId,
    blockdeviceId: volume.blockdeviceId,
    devicePath: volume.devicePath,
    mountPath: mountPathOf(dataset.datasetId, ctx),
    size: volume.size,
    target: dataset.restoreFrom.target,
    backupId: dataset.restoreFrom.backupId,
  };
}
