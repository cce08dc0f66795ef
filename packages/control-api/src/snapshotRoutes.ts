/**
 * The handlers of the snapshot routes (issue 20, an extension of the v1 API; their contract
 * is `apiRoutes` in @flocker/api). Snapshots are configuration (configuration.ts); what the
 * backends hold is state, from the nodes' reports (clusterState.ts).
 */
import { BACKUP_KEEP_KEY, BACKUP_TARGET_KEY, SnapshotConfiguration } from '@flocker/api';
import { aliveNodes } from './clusterState';
import { createSnapshot, deleteSnapshot, requireSnapshot } from './configuration';
import type { ControlState } from './ControlState';
import { ConfigurationError } from './errors';
import { serviceBackend } from './dataNode';
import { snapshotRefusal } from './localStorage';
import type { Handlers } from './routeSpec';

type SnapshotRouteName = 'listSnapshots' | 'createSnapshot' | 'getSnapshot' | 'deleteSnapshot' | 'listSnapshotState';

export const snapshotHandlers: Pick<Handlers, SnapshotRouteName> = {
  listSnapshots: (state, _ctx, views) => ({ status: 200, json: views.snapshots(), tag: state.configurationTag }),
  createSnapshot: async (state, { body, ifMatches }) => {
    // A snapshot with a backup's keys would be a backup request that skipped its checks (backups.ts).
    const reserved = Object.keys(body.metadata ?? {}).find((k) => k === BACKUP_TARGET_KEY || k === BACKUP_KEEP_KEY);
    if (reserved !== undefined) {
      throw new ConfigurationError(
        'BACKUP_KEY_RESERVED',
        `The metadata key ${reserved} marks a backup request: ask for backups with POST /v1/configuration/backups.`,
      );
    }
    // A local dataset's agent takes no snapshot: it would stay requested for ever (localStorage.ts).
    const onLocal = snapshotRefusal(
      state.configuration.datasets.get(body.dataset_id),
      serviceBackend(state),
      'a snapshot',
    );
    if (onLocal !== undefined) throw onLocal;
    const applied = await state.mutate((c, now) => createSnapshot(c, body, now), ifMatches);
    return { status: 201, body: SnapshotConfiguration.parse(applied.result), tag: state.configurationTag };
  },
  getSnapshot: (state, { params }) => ({
    status: 200,
    body: SnapshotConfiguration.parse(requireSnapshot(state.configuration, params.id)),
    tag: state.configurationTag,
  }),
  deleteSnapshot: async (state, { params, ifMatches }) => {
    const applied = await state.mutate((c) => deleteSnapshot(c, params.id), ifMatches);
    return { status: 200, body: SnapshotConfiguration.parse(applied.result), tag: state.configurationTag };
  },
  listSnapshotState: (_state, _ctx, views) => ({ status: 200, json: views.snapshotState() }),
};

/** The size of a snapshot as an alive node's backend reports it; undefined while none does (not taken yet). */
export function reportedSnapshotSize(state: ControlState, snapshotId: string): number | undefined {
  for (const { report } of aliveNodes(state.reportedNodes(), state.now(), state.nodeTimeoutMs)) {
    const found = report.snapshots?.find((s) => s.snapshot_id === snapshotId);
    if (found !== undefined) return found.size;
  }
  return undefined;
}
