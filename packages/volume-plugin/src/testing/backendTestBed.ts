/**
 * The setup the backend tests share: a control service in this process (memory
 * store), fake dataset agents reporting for their nodes, a temp directory, and
 * FlockerVolumeBackends with test timings, all closed again by close().
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FlockerClient } from '@flocker/api';
import {
  MemoryConfigurationStore,
  startControlService,
  type ControlService,
  type ControlServiceOptions,
} from '@flocker/control-api';
import * as winston from 'winston';
import { FlockerVolumeBackend, type FlockerVolumeBackendOptions } from '../FlockerVolumeBackend';
import { MountRegistry } from '../MountRegistry';
import { FakeDatasetAgent } from './FakeDatasetAgent';

export const NODE_A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
export const NODE_B = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
export const GiB = 1024 ** 3;
export const silentLogger = winston.createLogger({ silent: true, transports: [new winston.transports.Console()] });

/** A node a fake dataset agent reports for. */
export interface FakeNode {
  readonly uuid: string;
  readonly host: string;
  readonly mountRoot: string;
}
export const HOST_A: FakeNode = { uuid: NODE_A, host: 'host-a', mountRoot: '/flocker-a' };
export const HOST_B: FakeNode = { uuid: NODE_B, host: 'host-b', mountRoot: '/flocker-b' };

/** Options of a test backend: the bed's client, silent logger and test timings unless given; registryFile defaults to <dir>/<node>/plugin-mounts.json. */
export type TestBackendOptions = Partial<Omit<FlockerVolumeBackendOptions, 'nodeUuid' | 'registry'>> & {
  readonly registryFile?: string;
};

export class BackendTestBed {
  private readonly closers: (() => Promise<void>)[] = [];

  private constructor(
    readonly control: ControlService,
    readonly client: FlockerClient,
    readonly dir: string,
    /** One per node given to start(), in that order, started. */
    readonly agents: readonly FakeDatasetAgent[],
  ) {}

  /** `store`: the control service's (e.g. one holding what an older release made); an empty one by default. */
  static async start(
    tmpPrefix: string,
    nodes: readonly FakeNode[],
    store: MemoryConfigurationStore = new MemoryConfigurationStore(),
    /** The control service's options beyond these (e.g. its node timeout and clocks). */
    controlOptions: Partial<ControlServiceOptions> = {},
  ): Promise<BackendTestBed> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), tmpPrefix));
    const control = await startControlService({
      port: 0,
      host: '127.0.0.1',
      store,
      logger: silentLogger,
      ...controlOptions,
    });
    const agents = nodes.map((n) => new FakeDatasetAgent(control.url, n.uuid, n.host, n.mountRoot));
    for (const agent of agents) await agent.start();
    return new BackendTestBed(control, new FlockerClient({ baseUrl: control.url }), dir, agents);
  }

  /** A started backend of `node`, closed by close(). */
  async backend(node: string, options: TestBackendOptions = {}): Promise<FlockerVolumeBackend> {
    const { registryFile, ...given } = options;
    const registry = await MountRegistry.load(
      registryFile ?? path.join(this.dir, node, 'plugin-mounts.json'),
      undefined,
      given.now,
    );
    const b = new FlockerVolumeBackend({
      client: this.client,
      nodeUuid: node,
      registry,
      logger: silentLogger,
      mountTimeoutMs: 5_000,
      defaultSize: GiB,
      pollMs: 1_000,
      ...given,
    });
    await b.start();
    this.closers.push(() => b.close());
    return b;
  }

  /**
   * `node` turns out to be a local-btrfs node whose agent is stuck from here on: its fake agent paused,
   * and one report of it with `datasetId` mounted at `mountPath`.
   */
  async reportStuckLocalMount(node: FakeNode, datasetId: string, mountPath: string): Promise<void> {
    const agent = this.agents.find((a) => a.uuid === node.uuid);
    if (agent === undefined) throw new Error(`no fake agent for ${node.uuid}`);
    agent.paused = true;
    await this.client.reportNodeState({
      uuid: node.uuid,
      era: `era-${node.uuid}`,
      host: node.host,
      instance_id: `instance-${node.host}`,
      backend: 'local-btrfs',
      manifestations: [{ dataset_id: datasetId, blockdevice_id: 'x', size: 0, status: 'mounted', path: mountPath }],
      errors: [],
    });
  }

  /** Closes `what` before the backends (e.g. a reconciler driving one). */
  closeFirst(what: { close(): Promise<void> }): void {
    this.closers.unshift(() => what.close());
  }

  async close(): Promise<void> {
    for (const close of this.closers.splice(0)) await close();
    for (const agent of this.agents) await agent.stop();
    await this.control.close();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
