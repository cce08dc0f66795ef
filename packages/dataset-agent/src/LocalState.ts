/**
 * What the agent observes (LocalState), what it is asked for (DesiredState),
 * and what it may do about the difference (Action). Plain values, no I/O.
 */
import type { BlockDeviceSnapshot } from '@flocker/storage-drivers';

/** One volume of the (shared) storage pool; device details only when attached to this instance. */
export interface DiscoveredVolume {
  readonly blockdeviceId: string;
  readonly datasetId: string;
  readonly size: number;
  readonly attachedTo: string | null;
  readonly profile?: string;
  /** Present when attached here and the driver knows the device. */
  readonly devicePath?: string;
  /** Present when devicePath is: whether the device holds a filesystem. */
  readonly hasFilesystem?: boolean;
  /** Where the device is mounted on this host (empty when not mounted). */
  readonly mountPoints?: readonly string[];
  /** Mounted: its file system, as the mount table (or the mount just done) says; absent when neither ext4 nor xfs. */
  readonly filesystem?: 'ext4' | 'xfs';
  /** "major:minor" of devicePath, when known. */
  readonly deviceNumber?: string;
}

/** A mount at <mountRoot>/<dataset> of a device that is no volume attached here. */
export interface StrayMount {
  readonly datasetId: string;
  readonly mountPath: string;
  readonly device: string;
}

/** A volume of the pool whose record cannot be read: never "no volume" for its dataset. */
export interface UnreadableVolume {
  readonly blockdeviceId: string;
  /** The dataset, when anything tells (the record's remains, an earlier look, a node's report). */
  readonly datasetId?: string;
}

export interface LocalState {
  readonly instanceId: string;
  readonly volumes: readonly DiscoveredVolume[];
  /** Only from a full look with a mount root (see discoverLocalState). */
  readonly strayMounts?: readonly StrayMount[];
  /** Volumes the pool has but cannot describe (the agent adds them to its observation). */
  readonly unreadable?: readonly UnreadableVolume[];
  /**
   * The snapshots the backend holds (issue 20); absent when not listed (a backend
   * without snapshots, a failed listing, a look that did not need them): then no
   * snapshot is taken or destroyed on this look.
   */
  readonly snapshots?: readonly BlockDeviceSnapshot[];
}

export interface DesiredDataset {
  readonly datasetId: string;
  readonly primary: string;
  /** null: the agent's default size. */
  readonly maximumSize: number | null;
  readonly deleted: boolean;
  readonly profile?: string;
  /** The file system to make on a new volume; absent: ext4. */
  readonly filesystem?: 'xfs';
  /** A clone: the new volume is made from this snapshot (and never formatted). */
  readonly sourceSnapshotId?: string;
  /**
   * A restore not yet done (issue 20): the new volume is written from this stored backup,
   * then mounted; never formatted. Absent once the control service marked it restored.
   */
  readonly restoreFrom?: { readonly target: string; readonly backupId: string };
}

/** A snapshot of the desired configuration (issue 20). */
export interface DesiredSnapshot {
  readonly snapshotId: string;
  /** The source dataset. */
  readonly datasetId: string;
  readonly deleted: boolean;
  /** A backup request's implicit snapshot (issue 20): where to send it, how many backups to keep there. */
  readonly backup?: { readonly target: string; readonly keep?: number };
}

export interface ClusterNode {
  readonly uuid: string;
  readonly instanceId: string;
  readonly alive: boolean;
  /** The snapshot ids the node's last report lists (what its backend holds). */
  readonly snapshots?: readonly string[];
  /** The datasets it holds (a manifestation, or a volume attached to its own instance); absent: none. */
  readonly datasets?: readonly string[];
}

export interface DesiredState {
  readonly datasets: readonly DesiredDataset[];
  /** Nodes known to the control service, with liveness. */
  readonly nodes: readonly ClusterNode[];
  /** Configured snapshots, deleted ones included until the control service drops them. */
  readonly snapshots?: readonly DesiredSnapshot[];
}

export interface DecisionContext {
  readonly nodeUuid: string;
  readonly mountRoot: string;
  readonly defaultSize: number;
  readonly allocationUnit: number;
  /** Whether the driver can grow volumes. */
  readonly canResize: boolean;
}

export type Action =
  | {
      readonly kind: 'create';
      readonly datasetId: string;
      readonly size: number;
      readonly profile?: string;
      /** A clone: made from this snapshot, at least as big as it. */
      readonly sourceSnapshotId?: string;
    }
  | { readonly kind: 'attach'; readonly datasetId: string; readonly blockdeviceId: string }
  | {
      readonly kind: 'format';
      readonly datasetId: string;
      readonly blockdeviceId: string;
      readonly devicePath: string;
      /** Absent: ext4. */
      readonly filesystem?: 'xfs';
    }
  | {
      readonly kind: 'mount';
      readonly datasetId: string;
      readonly blockdeviceId: string;
      readonly devicePath: string;
      readonly mountPath: string;
      /** The volume's size: a smaller filesystem is grown before mounting. */
      readonly size: number;
    }
  | { readonly kind: 'unmount'; readonly datasetId: string; readonly blockdeviceId: string; readonly mountPath: string }
  | { readonly kind: 'detach'; readonly datasetId: string; readonly blockdeviceId: string }
  | {
      readonly kind: 'forceDetach';
      readonly datasetId: string;
      readonly blockdeviceId: string;
      readonly fromInstance: string;
    }
  | {
      readonly kind: 'destroy';
      readonly datasetId: string;
      readonly blockdeviceId: string;
      /** Detach from this instance first (the holder destroys what it let go of). */
      readonly detachFirst: boolean;
    }
  | {
      readonly kind: 'resize';
      readonly datasetId: string;
      readonly blockdeviceId: string;
      readonly devicePath: string;
      readonly size: number;
      /**
       * The driver extends only a volume it may detach (Cinder extend_attached: reattach): the agent's own mount goes
       * for the resize and comes back after it (executeAction's resizeUnmounted).
       */
      readonly unmounted?: true;
    }
  | {
      /** Take a configured snapshot of the dataset's volume attached here (frozen around it when mounted). */
      readonly kind: 'takeSnapshot';
      readonly datasetId: string;
      readonly blockdeviceId: string;
      readonly snapshotId: string;
      /** Where the volume is mounted: this file system is frozen while the snapshot is taken. */
      readonly mountPath?: string;
    }
  | {
      /**
       * Write a stored backup onto the dataset's new volume attached here (every chunk
       * verified), then mount it (issue 20). Never mounted when the restore fails.
       */
      readonly kind: 'restore';
      readonly datasetId: string;
      readonly blockdeviceId: string;
      readonly devicePath: string;
      readonly mountPath: string;
      readonly size: number;
      readonly target: string;
      readonly backupId: string;
    }
  | {
      /** Destroy a deleted snapshot in the backend (datasetId: its source dataset). */
      readonly kind: 'destroySnapshot';
      readonly datasetId: string;
      readonly snapshotId: string;
    };

export type ActionKind = Action['kind'];
export const ACTION_KINDS: readonly ActionKind[] = [
  'create',
  'attach',
  'format',
  'mount',
  'unmount',
  'detach',
  'forceDetach',
  'destroy',
  'resize',
  'takeSnapshot',
  'destroySnapshot',
  'restore',
];
