/**
 * The handlers of the backup routes (issue 20, an extension of the v1 API; their contract is
 * `apiRoutes` in @flocker/api). A backup request is a snapshot of the configuration
 * (backups.ts); its progress is state, from the reports of the agents running it.
 */
import { BackupConfiguration } from '@flocker/api';
import { createBackup, requireBackupNode } from './backups';
import { aliveNodes } from './clusterState';
import { serviceBackend } from './dataNode';
import { snapshotRefusal } from './localStorage';
import type { Handlers } from './routeSpec';

type BackupRouteName = 'listBackups' | 'createBackup' | 'listBackupState';

export const backupHandlers: Pick<Handlers, BackupRouteName> = {
  listBackups: (state, _ctx, views) => ({ status: 200, json: views.backups(), tag: state.configurationTag }),
  createBackup: async (state, { body, ifMatches }) => {
    // The node that takes the snapshot runs the backup: refused up front when its agent cannot.
    // (An unknown or deleted dataset is refused by createBackup, as a snapshot of it would be.)
    const dataset = state.configuration.datasets.get(body.dataset_id);
    // A local dataset's agent takes no snapshot to back up (localStorage.ts).
    const onLocal = snapshotRefusal(dataset, serviceBackend(state), 'a backup');
    if (onLocal !== undefined) throw onLocal;
    if (dataset !== undefined && !dataset.deleted) {
      const alive = aliveNodes(state.reportedNodes(), state.now(), state.nodeTimeoutMs);
      requireBackupNode(alive, dataset.primary, "the dataset's primary");
    }
    const applied = await state.mutate((c, now) => createBackup(c, body, now), ifMatches);
    return { status: 201, body: BackupConfiguration.parse(applied.result), tag: state.configurationTag };
  },
  listBackupState: (_state, _ctx, views) => ({ status: 200, json: views.backupState() }),
};
