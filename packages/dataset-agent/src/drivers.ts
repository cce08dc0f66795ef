/**
 * The storage driver an agent runs, built from agent.yml's `dataset:` section,
 * with what the agent needs besides the BlockDeviceApi: this node's instance id
 * in the backend's terms, start-up repair, and pool change notifications where
 * the backend can push them (the shared loopback pool can; clouds cannot).
 */
import type winston from 'winston';
import {
  CinderDriver,
  createEbsDriver,
  LoopbackDriver,
  ScaleIoDriver,
  XtremioDriver,
  type BlockDeviceApi,
} from '@flocker/storage-drivers';
import type { DatasetBackendConfig } from './config';
import { AgentError } from './errors';

export interface AgentDriver {
  readonly driver: BlockDeviceApi;
  readonly instanceId: string;
  /** Bring local attachments in line with the backend after a crash or reboot. */
  readonly repair: () => Promise<Record<string, unknown> | undefined>;
  /** Calls onChange when the pool changes; returns a function that stops watching. */
  readonly poolChanges?: (onChange: () => void) => () => void;
  /** Releases what fences left on this host (loop devices of fenced images, once unmounted). */
  readonly releaseFenced?: () => Promise<unknown>;
  /** The driver extends only a volume it may detach (Cinder extend_attached: reattach): see DatasetAgentOptions. */
  readonly resizeUnmounted?: boolean;
  /**
   * The backend's check of a configured instance id (EBS: one DescribeInstances, up to 5 s when EC2 hangs), left to
   * the start-up steps: the agent self-fences and reports its liveness meanwhile (DatasetAgent.startAfter).
   */
  readonly checkInstance?: () => Promise<void>;
  /**
   * Mount its file systems with online discard (HostOpsOptions.discard): the loopback backend, whose loop devices
   * punch holes in their images for what the file system frees (TN F10).
   */
  readonly mountDiscard?: boolean;
}

export async function createAgentDriver(
  dataset: DatasetBackendConfig,
  nodeUuid: string,
  logger: winston.Logger,
): Promise<AgentDriver> {
  switch (dataset.backend) {
    case 'loopback': {
      // The node's compute instance in the loopback pool is the node itself.
      const driver = new LoopbackDriver({
        rootPath: dataset.root_path,
        instanceId: nodeUuid,
        ...(dataset.allocation_unit !== undefined ? { allocationUnit: dataset.allocation_unit } : {}),
        logger,
      });
      return {
        driver,
        instanceId: nodeUuid,
        repair: async () => {
          const r = await driver.repair();
          const changed = [
            r.reattached,
            r.detachedStale,
            r.busy,
            r.finishedFences,
            r.releasedDevices,
            r.removedFencedImages,
            r.removedOrphanImages,
            r.removedRecordTemps,
          ];
          return changed.some((list) => list.length > 0) ? { ...r } : undefined;
        },
        poolChanges: (onChange) => driver.watchPool(onChange),
        releaseFenced: () => driver.releaseFenced(),
        mountDiscard: true,
      };
    }
    case 'aws': {
      const driver = createEbsDriver({ config: dataset, logger });
      // A configured id is the id computeInstanceId answers once its check has passed.
      if (dataset.instance_id !== undefined)
        return {
          driver,
          instanceId: dataset.instance_id,
          repair: async () => undefined,
          checkInstance: async () => {
            await driver.computeInstanceId();
          },
        };
      return { driver, instanceId: await driver.computeInstanceId(), repair: async () => undefined };
    }
    case 'openstack':
    case 'rackspace': {
      const driver = new CinderDriver(dataset, { logger });
      return {
        driver,
        instanceId: await driver.computeInstanceId(),
        repair: async () => undefined,
        resizeUnmounted: dataset.extend_attached === 'reattach',
      };
    }
    case 'scaleio': {
      const driver = new ScaleIoDriver(dataset, { logger });
      return { driver, instanceId: await driver.computeInstanceId(), repair: async () => undefined };
    }
    case 'xtremio': {
      const driver = new XtremioDriver(dataset, { logger });
      return { driver, instanceId: await driver.computeInstanceId(), repair: async () => undefined };
    }
    case 'local':
      // Not a block device every node can attach: startDatasetAgent runs the LocalAgent instead.
      throw new AgentError('CONFIG_INVALID', 'a local backend has no block device driver');
  }
}
