/**
 * The UI's mutations, each a thin call of the FlockerClient. Failures become a
 * status, a stable code and the API's own sentence, which the browser shows as is.
 */
import { errorMessage } from '@flocker/runtime';
import { z } from 'zod';
import { FlockerApiError, type ClusterSnapshot, type FlockerClient } from '@flocker/api';
import {
  clusterView,
  CreateVolumeBody,
  MINIMUM_DATASET_SIZE,
  MoveVolumeBody,
  parseSize,
  ReleaseLeaseBody,
  releaseRisk,
  SizeError,
  volumeName,
} from '@flocker/web-ui';

export type UiClient = Pick<
  FlockerClient,
  'waitForCluster' | 'createDataset' | 'updateDataset' | 'deleteDataset' | 'releaseLease'
>;

export class UiActionError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'UiActionError';
  }
}

/** Any failure of an action as what the UI server answers. */
export function toActionError(e: unknown): UiActionError {
  if (e instanceof UiActionError) return e;
  if (e instanceof FlockerApiError) return new UiActionError(e.status === 0 ? 502 : e.status, e.code, e.description);
  if (e instanceof SizeError) return new UiActionError(400, e.code, e.message);
  if (e instanceof z.ZodError) return new UiActionError(400, 'INVALID_REQUEST', z.prettifyError(e));
  return new UiActionError(500, 'INTERNAL', errorMessage(e));
}

export class UiActions {
  constructor(
    private readonly client: UiClient,
    /** The latest snapshot the feed has, to check names and nodes without a round trip. */
    private readonly latest: () => ClusterSnapshot | undefined,
  ) {}

  private async snapshot(): Promise<ClusterSnapshot> {
    return this.latest() ?? (await this.client.waitForCluster(undefined, 0));
  }

  async create(body: unknown) {
    const req = CreateVolumeBody.parse(body);
    const size = parseSize(req.size, MINIMUM_DATASET_SIZE);
    const s = await this.snapshot();
    if (s.datasets.some((d) => !d.deleted && volumeName(d) === req.name)) {
      throw new UiActionError(409, 'VOLUME_EXISTS', `a volume named "${req.name}" already exists`);
    }
    if (!s.nodes.some((n) => n.uuid === req.node))
      throw new UiActionError(404, 'NODE_NOT_FOUND', `no node ${req.node} has reported to the control service`);
    return this.client.createDataset({ primary: req.node, maximum_size: size, metadata: { name: req.name } });
  }

  async move(datasetId: string, body: unknown) {
    const req = MoveVolumeBody.parse(body);
    return this.client.updateDataset(datasetId, { primary: req.node });
  }

  /**
   * Releasing the lease of a volume a live node holds (a container there uses it) needs
   * the user's confirmation, `{ force: true }` (issue 17); without it: 409 VOLUME_IN_USE and the risk in words.
   */
  async releaseLease(datasetId: string, body: unknown = {}) {
    const req = ReleaseLeaseBody.parse(body);
    if (!req.force) {
      const view = clusterView(await this.snapshot());
      const volume = view.volumes.find((v) => v.dataset_id === datasetId.toLowerCase());
      const risk = volume ? releaseRisk(volume, view.nodes) : null;
      if (risk !== null) throw new UiActionError(409, 'VOLUME_IN_USE', `${risk} Confirm to release it anyway.`);
    }
    return this.client.releaseLease(datasetId);
  }

  async delete(datasetId: string) {
    return this.client.deleteDataset(datasetId);
  }
}
