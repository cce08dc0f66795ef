/**
 * The UI's mutations, each a thin call of the FlockerClient. Failures become a
 * status, a stable code and the API's own sentence, which the browser shows as is.
 */
import { errorMessage } from '@flocker/runtime';
import { z } from 'zod';
import { FlockerApiError, Uuid, type ClusterSnapshot, type FlockerClient } from '@flocker/api';
import {
  cloneMetadata,
  CloneSnapshotBody,
  clusterView,
  CreateVolumeBody,
  MINIMUM_DATASET_SIZE,
  MoveVolumeBody,
  parseSize,
  ReleaseLeaseBody,
  releaseRisk,
  localSnapshotsRefusal,
  ResizeVolumeBody,
  SetScheduleBody,
  SizeError,
  TakeSnapshotBody,
  volumeName,
} from '@flocker/web-ui';
import {
  METADATA_FILESYSTEM_KEY,
  METADATA_SNAPSHOT_KEEP_KEY,
  METADATA_SNAPSHOT_SCHEDULE_KEY,
  newVolumeNameProblem,
  type NodeState,
} from '@flocker/api';
import { deadTargetText } from '../validation';

export type UiClient = Pick<
  FlockerClient,
  | 'waitForCluster'
  | 'createDataset'
  | 'updateDataset'
  | 'deleteDataset'
  | 'releaseLease'
  | 'createSnapshot'
  | 'deleteSnapshot'
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

/**
 * A refused body in plain sentences for the page (issue 21: it showed zod's
 * "✖ a volume needs a name → at name"): our own messages as they are; zod's generic
 * ones ("Invalid input: …") name the field they are about.
 */
export function inWords(e: z.ZodError): string {
  return (
    e.issues
      .map((i) =>
        i.code === 'custom' || i.path.length === 0 || i.message.includes(String(i.path[i.path.length - 1]))
          ? i.message
          : /^(Invalid|Too|Unrecognized)/.test(i.message)
            ? `${i.path.join('.')}: ${i.message}`
            : i.message,
      )
      // "…or 1TiB.; choose a node": a sentence's own full stop goes before the next one (review TN F9).
      .map((m, i, all) => (i < all.length - 1 ? m.replace(/\.$/, '') : m))
      .join('; ')
  );
}

/** Any failure of an action as what the UI server answers. */
export function toActionError(e: unknown): UiActionError {
  if (e instanceof UiActionError) return e;
  if (e instanceof FlockerApiError) return new UiActionError(e.status === 0 ? 502 : e.status, e.code, e.description);
  if (e instanceof SizeError) return new UiActionError(400, e.code, e.message);
  if (e instanceof z.ZodError) {
    // A refused size keeps a code that says so (the form marks its Size field): the words no longer name the field.
    const size = e.issues.some((i) => i.path.includes('maximum_size') || (i.code === 'custom' && i.path[0] === 'size'));
    return new UiActionError(400, size ? 'INVALID_SIZE' : 'INVALID_REQUEST', inWords(e));
  }
  return new UiActionError(500, 'INTERNAL', errorMessage(e));
}

function unknownNode(ref: string): UiActionError {
  return new UiActionError(
    404,
    'NODE_NOT_FOUND',
    `no node with UUID or address ${ref} has reported to the control service`,
  );
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

  /** Local storage takes no snapshots through the API yet (issue 24): 409 before anything is asked. */
  private async noLocalSnapshots(datasetId: string, what: string): Promise<void> {
    const s = await this.snapshot();
    const d = s.datasets.find((x) => x.dataset_id === datasetId.toLowerCase());
    const why = d === undefined ? null : localSnapshotsRefusal(s, d.primary, what);
    if (why !== null) throw new UiActionError(409, 'NOT_ON_LOCAL_STORAGE', why);
  }

  /**
   * The node a request names, by UUID or by the address it reports (as the CLI takes it; review TN F9); undefined
   * when none answers. An address two nodes report is refused: a node chooses its address, its UUID it cannot.
   */
  private nodeOf(s: ClusterSnapshot, ref: string): NodeState | undefined {
    const byUuid = s.nodes.find((n) => n.uuid === ref.toLowerCase());
    if (byUuid !== undefined) return byUuid;
    const byHost = s.nodes.filter((n) => n.host === ref);
    if (byHost.length > 1)
      throw new UiActionError(
        409,
        'AMBIGUOUS_NODE',
        `${byHost.length} nodes report the address ${ref} (${byHost.map((n) => n.uuid).join(', ')}): choose one by its UUID`,
      );
    return byHost[0];
  }

  /**
   * A new volume's name must be free and its node known and alive (as a move's target: a form rendered before
   * the node died still sends it, review T2 F7); answers the snapshot it checked against.
   */
  private async checkNew(name: string, node: string): Promise<{ s: ClusterSnapshot; node: string }> {
    const nameProblem = newVolumeNameProblem(name);
    if (nameProblem !== undefined) throw new UiActionError(400, 'INVALID_REQUEST', nameProblem);
    const s = await this.snapshot();
    if (s.datasets.some((d) => !d.deleted && volumeName(d) === name)) {
      throw new UiActionError(409, 'VOLUME_EXISTS', `a volume named "${name}" already exists`);
    }
    const target = this.nodeOf(s, node);
    if (target === undefined) throw unknownNode(node);
    if (!target.alive)
      throw new UiActionError(
        409,
        'NODE_NOT_ALIVE',
        `${target.host} (node ${target.uuid.slice(0, 8)}) is not alive (last report ${target.last_seen}): nothing was created; choose a live node`,
      );
    return { s, node: target.uuid };
  }

  /** The file system goes into the metadata when chosen; the API refuses xfs below 300 MiB (400, shown as is). */
  async create(body: unknown) {
    const req = CreateVolumeBody.parse(body);
    const size = parseSize(req.size, MINIMUM_DATASET_SIZE);
    const { node } = await this.checkNew(req.name, req.node);
    const metadata: Record<string, string> = { name: req.name };
    if (req.filesystem !== undefined) metadata[METADATA_FILESYSTEM_KEY] = req.filesystem;
    // unique_name: a namesake made since checkNew (a Docker plugin's Create) is refused by the control service, 409.
    return this.client.createDataset({ primary: node, maximum_size: size, metadata, unique_name: true });
  }

  async move(datasetId: string, body: unknown) {
    const req = MoveVolumeBody.parse(body);
    // A dead node acts on nothing: the move would only be asked (a local volume's source then waits for it).
    const s = await this.snapshot();
    const target = this.nodeOf(s, req.node);
    // A UUID the snapshot lacks yet goes on (the API knows the nodes); an address nobody has is refused here.
    if (target === undefined && !Uuid.safeParse(req.node).success) throw unknownNode(req.node);
    const d = s.datasets.find((x) => x.dataset_id === datasetId.toLowerCase());
    if (target !== undefined && !target.alive && d?.primary !== target.uuid)
      throw new UiActionError(409, 'NODE_NOT_ALIVE', deadTargetText(target));
    // when_released is sent only when asked: a control service before it refuses the field (400).
    return this.client.updateDataset(datasetId, {
      primary: target?.uuid ?? req.node,
      ...(req.when_released === true ? { when_released: true } : {}),
    });
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

  /** Grows the volume; the API refuses a smaller size (400 DATASET_SHRINK, its words shown). */
  async resize(datasetId: string, body: unknown) {
    const req = ResizeVolumeBody.parse(body);
    const size = parseSize(req.size, MINIMUM_DATASET_SIZE);
    return this.client.updateDataset(datasetId.toLowerCase(), { maximum_size: size });
  }

  async delete(datasetId: string) {
    return this.client.deleteDataset(datasetId);
  }

  /** Asks for a snapshot of the volume; its primary node takes it (the view follows it from "requested"). */
  async takeSnapshot(datasetId: string, body: unknown = {}) {
    const req = TakeSnapshotBody.parse(body);
    await this.noLocalSnapshots(datasetId, 'a snapshot');
    return this.client.createSnapshot({
      dataset_id: datasetId.toLowerCase(),
      ...(req.name !== undefined ? { metadata: { name: req.name } } : {}),
    });
  }

  /**
   * A new volume from a snapshot, with the source's profile and file system. A blank size is
   * the snapshot's; the API refuses one below it (400 CLONE_TOO_SMALL) and a snapshot not live.
   */
  async clone(snapshotId: string, body: unknown) {
    const req = CloneSnapshotBody.parse(body);
    const size = req.size === '' ? undefined : parseSize(req.size, MINIMUM_DATASET_SIZE);
    const checked = await this.checkNew(req.name, req.node);
    let s = checked.s;
    // A local node's agent does not fill a clone from its snapshot (issue 24): it would be created empty.
    const onLocal = localSnapshotsRefusal(s, checked.node, 'a clone');
    if (onLocal !== null) throw new UiActionError(409, 'NOT_ON_LOCAL_STORAGE', onLocal);
    const id = snapshotId.toLowerCase();
    const find = (c: ClusterSnapshot) => c.snapshots?.find((x) => x.snapshot_id === id);
    // A snapshot newer than the feed's last look: look again, or the clone would lose the source's file system.
    if (find(s) === undefined) s = await this.client.waitForCluster(undefined, 0);
    const snap = find(s);
    const source = s.datasets.find((d) => d.dataset_id === snap?.dataset_id);
    return this.client.createDataset({
      primary: checked.node,
      source_snapshot_id: id,
      ...(size !== undefined ? { maximum_size: size } : {}),
      metadata: cloneMetadata(req.name, source),
      unique_name: true,
    });
  }

  /**
   * Sets (or, blank, removes) the volume's snapshot schedule and keep; the control service runs it.
   * The API checks the grammar, the minimum interval and the keep (400 in its words).
   */
  async setSchedule(datasetId: string, body: unknown) {
    const req = SetScheduleBody.parse(body);
    const none = req.schedule === '';
    if (!none) await this.noLocalSnapshots(datasetId, 'a snapshot schedule');
    return this.client.updateDataset(datasetId.toLowerCase(), {
      metadata: {
        [METADATA_SNAPSHOT_SCHEDULE_KEY]: none ? null : req.schedule,
        [METADATA_SNAPSHOT_KEEP_KEY]: none || req.keep === '' ? null : req.keep,
      },
    });
  }

  async deleteSnapshot(snapshotId: string) {
    return this.client.deleteSnapshot(snapshotId.toLowerCase());
  }
}
