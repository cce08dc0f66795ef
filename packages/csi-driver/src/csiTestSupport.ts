/**
 * Test support for the CsiDriver tests against a fake control service: nodes, a one-dataset world, a control service
 * of datasets only, a quiet driver.
 */
import type { ClusterSnapshot, CreateDatasetRequest, DatasetConfiguration, Lease, NodeState } from '@flocker/api';
import winston from 'winston';
import { CsiDriver, type ControlClient, type CsiDriverOptions } from './CsiDriver';
import { MiB, type MountInfoEntry } from './mapping';

/** A live node as the control service reports it, with nothing on it unless `extra` says so. */
export function fakeNode(uuid: string, host: string, extra: Partial<NodeState> = {}): NodeState {
  return {
    uuid,
    era: 'e',
    host,
    instance_id: uuid,
    backend: 'loopback',
    manifestations: [],
    errors: [],
    alive: true,
    last_seen: new Date().toISOString(),
    ...extra,
  };
}

/** What the fake control service holds, and the calls made to it. */
export interface World {
  datasets: DatasetConfiguration[];
  leases: Lease[];
  nodes: NodeState[];
  calls: string[];
}

/** One 64 MiB dataset `id` (named v) on `primary`, no lease, the given nodes. */
export function oneDatasetWorld(id: string, primary: string, nodes: NodeState[]): World {
  return {
    datasets: [{ dataset_id: id, primary, maximum_size: 64 * MiB, metadata: { name: 'v' }, deleted: false }],
    leases: [],
    nodes,
    calls: [],
  };
}

/** A silent driver on node `nodeId` (node mode unless overridden) whose mounter only reports `mounts`. */
export function quietDriver(
  client: ControlClient,
  nodeId: string,
  mounts: MountInfoEntry[],
  overrides: Partial<CsiDriverOptions> = {},
): CsiDriver {
  return new CsiDriver({
    client,
    logger: winston.createLogger({ silent: true }),
    mode: 'node',
    nodeId,
    mounter: { mounts: async () => mounts, bind: async () => undefined, unmount: async () => undefined },
    version: 'test',
    defaultSize: 64 * MiB,
    stageTimeoutMs: 150,
    pollMs: 20,
    ...overrides,
  });
}

/** The dataset `id` a create request makes, as the control service makes it, added to `datasets`. */
export function addDataset(
  datasets: DatasetConfiguration[],
  req: CreateDatasetRequest,
  id: string,
): DatasetConfiguration {
  const d: DatasetConfiguration = {
    dataset_id: id,
    primary: req.primary,
    maximum_size: req.maximum_size ?? null,
    metadata: req.metadata ?? {},
    deleted: false,
  };
  datasets.push(d);
  return d;
}

/** The datasets and nodes a fake control service of datasets holds; `generation` (default 1): its cluster's. */
export interface DatasetsWorld {
  datasets: DatasetConfiguration[];
  nodes: NodeState[];
  generation?: number;
}

/**
 * A fake control service of datasets only (no leases, snapshots, updates or deletes): it lists `w`'s datasets (copies,
 * as a real client's), makes them by `create`, and answers the cluster's long-poll for a changed generation at once,
 * else after a short wait (the fake has no events).
 */
export function datasetsClient(
  w: DatasetsWorld,
  create: (req: CreateDatasetRequest) => DatasetConfiguration,
): ControlClient {
  const generation = (): string => String(w.generation ?? 1);
  const snap = (): ClusterSnapshot => ({
    generation: generation(),
    configuration_tag: 't',
    datasets: w.datasets,
    leases: [],
    nodes: w.nodes,
  });
  const unused = () => Promise.reject(new Error('unused'));
  return {
    version: async () => ({ flocker: 'test' }),
    listDatasets: async () => w.datasets.map((d) => ({ ...d })),
    createDataset: async (req: CreateDatasetRequest) => create(req),
    deleteDataset: unused,
    updateDataset: unused,
    createSnapshot: unused,
    deleteSnapshot: unused,
    listLeases: async () => [],
    acquireLease: unused,
    releaseLease: unused,
    waitForCluster: async (since?: string, timeoutMs?: number) => {
      if (since === generation() && (timeoutMs ?? 0) > 0)
        await new Promise((r) => setTimeout(r, Math.min(timeoutMs ?? 0, 20)));
      return snap();
    },
  };
}
