/**
 * A deleted snapshot of a local dataset (issue 24) is dropped from the configuration. Local storage takes no
 * snapshots through the API and its agents report none (no `snapshots` in their reports), so on a cluster of local
 * nodes only, where no node reports snapshots at all, a deleted snapshot stayed "deleting" for ever: the one
 * asked for before the node reported its backend (which the CLI and web UI tell the user to delete) could never go.
 */
import { createDataset, createSnapshot, deleteSnapshot, registerNode } from './configuration';
import { MemoryConfigurationStore } from './ConfigurationStore';
import { ControlState } from './ControlState';
import { NODE_A as A, NODE_B as B, nodeReport, silentLogger } from './testing/httpService';

const LOCAL = '11111111-1111-4111-8111-111111111111';
const S1 = '51515151-0000-4000-8000-000000000051';
const S2 = '52525252-0000-4000-8000-000000000052';

describe('deleted snapshots of local datasets', () => {
  it("are purged although no node reports snapshots; another backend's stay as before (nothing says they are gone)", async () => {
    const state = await ControlState.open({
      store: new MemoryConfigurationStore(),
      nodeTimeoutMs: 60_000,
      logger: silentLogger,
      livenessCheckMs: 60_000,
    });
    try {
      await state.mutate((c) => ({ config: registerNode(c, { uuid: A, host: 'a' }), result: undefined, status: 200 }));
      await state.mutate((c) => ({ config: registerNode(c, { uuid: B, host: 'b' }), result: undefined, status: 200 }));
      await state.mutate((c) => createDataset(c, { primary: A, dataset_id: LOCAL }));
      await state.mutate((c) => createDataset(c, { primary: B, dataset_id: '22222222-2222-4222-8222-222222222222' }));
      // Asked for before the nodes reported (the API accepted them then), then deleted.
      await state.mutate((c, now) => createSnapshot(c, { dataset_id: LOCAL, snapshot_id: S1 }, now));
      await state.mutate((c, now) =>
        createSnapshot(c, { dataset_id: '22222222-2222-4222-8222-222222222222', snapshot_id: S2 }, now),
      );
      await state.mutate((c) => deleteSnapshot(c, S1));
      await state.mutate((c) => deleteSnapshot(c, S2));
      // Neither node reports `snapshots` at all (A as local agents do); B's backend is not local.
      await state.report(nodeReport(A, { backend: 'local-btrfs' }));
      await state.report(nodeReport(B, { backend: 'some-block-backend-without-snapshots' }));
      await state.purgeSnapshots();
      expect([...(state.configuration.snapshots?.keys() ?? [])]).toEqual([S2]);
    } finally {
      await state.close();
    }
  });
});
