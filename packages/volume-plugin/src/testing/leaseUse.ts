import type { FlockerClient } from '@flocker/api';
import type { ControlClient, FlockerVolumeBackend } from '../FlockerVolumeBackend';

/**
 * A plugin's control client that passes every call to `client` but those `over` replaces (a view changed, a call
 * counted or refused). Never watchCluster: the plugin long-polls waitForCluster, so a changed view is what it follows.
 */
export function forwardingClient(client: FlockerClient, over: Partial<ControlClient> = {}): ControlClient {
  return {
    createDataset: (...a) => client.createDataset(...a),
    updateDataset: (...a) => client.updateDataset(...a),
    deleteDataset: (...a) => client.deleteDataset(...a),
    waitForCluster: (...a) => client.waitForCluster(...a),
    acquireLease: (...a) => client.acquireLease(...a),
    releaseLease: (...a) => client.releaseLease(...a),
    declineReleaseRequest: (...a) => client.declineReleaseRequest(...a),
    ...over,
  };
}

/**
 * Mounts and (after the copy-up window) unmounts volume `name` on `backend`, then waits for what that started
 * (keeping idle leases): the volume is idle there, its lease kept if the plugin keeps it. Answers the Mount's reply.
 */
export async function useOnce(
  backend: FlockerVolumeBackend,
  id = 'c1',
  name = 'vol1',
): Promise<{ Mountpoint?: string }> {
  const m = await backend.mount({ Name: name, ID: id });
  await new Promise((r) => setTimeout(r, 100));
  await backend.unmount({ Name: name, ID: id });
  await backend.settled({ keepIdle: true });
  return m;
}
