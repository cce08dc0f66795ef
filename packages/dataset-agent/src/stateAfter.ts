/**
 * The state of one dataset's volumes right after a step of its setup, from what
 * that step's own calls answered: the next step is decided on it without
 * another look. Only where the answer is the whole truth about what changed:
 *
 * - create made the volume: it exists, unattached (the driver's own record); or it claimed a
 *   spare attached here at the device it named (issue 23): formatted and unmounted, as after
 *   the attach below;
 * - attach attached a volume this process created and never formatted: it is
 *   here, at the device the driver named, blank and unmounted; or one this process
 *   claimed from a spare (issue 23): formatted (the spare's proof was checked under
 *   the pool lock) and unmounted; or one this process has seen holding a file system
 *   (a move here, issue 23): a file system is never taken off a volume by the agent, and
 *   the device the attach just bound is mounted nowhere yet;
 * - format ended without error: the device holds a filesystem and is not
 *   mounted (mkfs refuses a mounted device).
 *
 * Not after a mount: that is normally the last step, and the look after it
 * confirms the goal (a mount that "succeeds" without effect, in another mount
 * namespace say, must show as an error, not as mounted).
 *
 * Anything else (a step found already done, an attach of a volume made before,
 * every other kind) returns undefined: the worker looks afresh as usual. The
 * next step still guards itself (attach is exclusive in the driver, mkfs probes
 * the device before writing, mount checks what is mounted), so a wrong guess
 * costs a failed step, never data.
 */
import type { ActionResult } from './executeAction';
import type { Action, DiscoveredVolume, LocalState } from './LocalState';

export function stateAfter(
  before: LocalState,
  action: Action,
  result: ActionResult,
  /** Whether this process created the volume and has not formatted it (DatasetAgent's blank set). */
  knownBlank: (blockdeviceId: string) => boolean,
  /**
   * Whether the volume holds a file system as this process knows (issue 23): claimed from a spare, or seen
   * holding one (DatasetWorker.formatted). Its attach is followed by the mount with no look.
   */
  knownFormatted: (blockdeviceId: string) => boolean = () => false,
): LocalState | undefined {
  const mine = before.volumes.filter((v) => v.datasetId === action.datasetId);
  const others = before.volumes.filter((v) => v.datasetId !== action.datasetId);
  // The volume acted on, as last seen, and the state with it changed.
  const target = 'blockdeviceId' in action ? mine.find((v) => v.blockdeviceId === action.blockdeviceId) : undefined;
  const withTarget = (changed: DiscoveredVolume): LocalState => ({
    instanceId: before.instanceId,
    volumes: [...others, ...mine.map((v) => (v === target ? changed : v))],
  });
  switch (action.kind) {
    case 'create': {
      const created = result.created;
      if (created === undefined || created.datasetId !== action.datasetId || mine.length > 0) return undefined;
      // Attached by the claim itself: only a claimed spare here at a named device is known (else a look).
      const attachedHere =
        created.attachedTo !== null &&
        created.attachedTo === before.instanceId &&
        result.devicePath !== undefined &&
        knownFormatted(created.blockdeviceId);
      if (created.attachedTo !== null && !attachedHere) return undefined;
      const volume: DiscoveredVolume = {
        blockdeviceId: created.blockdeviceId,
        datasetId: created.datasetId,
        size: created.size,
        attachedTo: created.attachedTo,
        ...(created.profile !== undefined ? { profile: created.profile } : {}),
        ...(attachedHere ? { devicePath: result.devicePath, hasFilesystem: true, mountPoints: [] } : {}),
      };
      return { instanceId: before.instanceId, volumes: [...others, volume] };
    }
    case 'attach': {
      const devicePath = result.devicePath;
      const blank = knownBlank(action.blockdeviceId);
      if (target?.attachedTo !== null || devicePath === undefined || !(blank || knownFormatted(action.blockdeviceId)))
        return undefined;
      // A claimed spare holds the file system the format would have made: mounted next.
      return withTarget({
        ...target,
        // The record's size at the attach: the view a move's attach was decided on may predate a resize.
        ...(result.size !== undefined ? { size: result.size } : {}),
        attachedTo: before.instanceId,
        devicePath,
        hasFilesystem: !blank,
        mountPoints: [],
      });
    }
    case 'format':
      if (target?.devicePath !== action.devicePath || (target.mountPoints ?? []).length > 0) return undefined;
      return withTarget({ ...target, hasFilesystem: true, mountPoints: [] });
    // Not setup steps, or their answer is not the whole truth: the next step needs a real look.
    case 'mount':
    case 'unmount':
    case 'resize':
    case 'detach':
    case 'forceDetach':
    case 'destroy':
    case 'takeSnapshot':
    case 'destroySnapshot':
    case 'restore':
      return undefined;
  }
}
