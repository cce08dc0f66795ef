import type { ClusterSnapshot, NodeReport } from '@flocker/api';
import { StorageError, type BlockDeviceApi, type BlockDeviceVolume } from '@flocker/storage-drivers';
import winston from 'winston';
import { DatasetAgent, type ControlChannel } from './DatasetAgent';
import type { HostMount, HostOps } from './HostOps';

const ME = '11111111-1111-4111-8111-111111111111';
const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const MiB = 1024 * 1024;

class FakeDriver implements BlockDeviceApi {
  readonly backend = 'fake';
  readonly volumes = new Map<string, BlockDeviceVolume>();
  private next = 0;
  allocationUnit(): number {
    return MiB;
  }
  async computeInstanceId(): Promise<string> {
    return 'i-me';
  }
  async createVolume(datasetId: string, size: number): Promise<BlockDeviceVolume> {
    const v = { blockdeviceId: `vol-${this.next++}`, datasetId, size, attachedTo: null };
    this.volumes.set(v.blockdeviceId, v);
    return v;
  }
  async destroyVolume(id: string): Promise<void> {
    this.volumes.delete(id);
  }
  async attachVolume(id: string, instanceId: string): Promise<BlockDeviceVolume> {
    const v = this.volumes.get(id)!;
    if (v.attachedTo !== null) throw new StorageError('ALREADY_ATTACHED', 'attached');
    const a = { ...v, attachedTo: instanceId };
    this.volumes.set(id, a);
    return a;
  }
  async detachVolume(id: string): Promise<void> {
    const v = this.volumes.get(id)!;
    if (v.attachedTo === null) throw new StorageError('UNATTACHED', 'unattached');
    this.volumes.set(id, { ...v, attachedTo: null });
  }
  async listVolumes(): Promise<BlockDeviceVolume[]> {
    return [...this.volumes.values()];
  }
  async getDevicePath(id: string): Promise<string> {
    return `/dev/fake/${id}`;
  }
}

class FakeHost implements HostOps {
  readonly formatted = new Set<string>();
  mounts: HostMount[] = [];
  failMounts = 0;
  async listMounts(): Promise<HostMount[]> {
    return [...this.mounts];
  }
  async deviceNumber(): Promise<string | null> {
    return null;
  }
  async hasFilesystem(device: string): Promise<boolean> {
    return this.formatted.has(device);
  }
  async makeFilesystem(device: string): Promise<void> {
    if (this.formatted.has(device)) throw new StorageError('FILESYSTEM_EXISTS', 'exists');
    this.formatted.add(device);
  }
  async mkdirp(): Promise<void> {}
  async mount(device: string, mountPoint: string): Promise<void> {
    if (this.failMounts > 0) {
      this.failMounts--;
      throw new StorageError('BACKEND_ERROR', 'mount: no luck');
    }
    this.mounts.push({ device, mountPoint, majorMinor: '0:0' });
  }
  async unmount(mountPoint: string): Promise<void> {
    this.mounts = this.mounts.filter((m) => m.mountPoint !== mountPoint);
  }
  async resizeFilesystem(): Promise<void> {}
  async filesystemSize(): Promise<number | null> {
    return null;
  }
  async growUnmountedFilesystem(): Promise<void> {}
}

/** A control service in memory: long-polls resolve when the generation moves. */
class FakeControl implements ControlChannel {
  reports: NodeReport[] = [];
  private generation = 1;
  private datasets: ClusterSnapshot['datasets'] = [];
  private waiters: Array<() => void> = [];
  setDatasets(d: ClusterSnapshot['datasets']): void {
    this.datasets = d;
    this.bump();
  }
  private bump(): void {
    this.generation++;
    for (const w of this.waiters.splice(0)) w();
  }
  private snapshot(): ClusterSnapshot {
    return { generation: String(this.generation), configuration_tag: 't', datasets: this.datasets, leases: [], nodes: [] };
  }
  async reportNodeState(report: NodeReport): Promise<unknown> {
    this.reports.push(report);
    this.bump();
    return { generation: String(this.generation) };
  }
  waitForCluster(since?: string, timeoutMs = 1000): Promise<ClusterSnapshot> {
    if (since !== String(this.generation)) return Promise.resolve(this.snapshot());
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(this.snapshot()), Math.min(timeoutMs, 200));
      this.waiters.push(() => {
        clearTimeout(t);
        resolve(this.snapshot());
      });
    });
  }
  last(): NodeReport | undefined {
    return this.reports[this.reports.length - 1];
  }
}

function setup(extra: { crash?: () => void; crashAfter?: { kind: 'create'; count: number } } = {}) {
  const driver = new FakeDriver();
  const host = new FakeHost();
  const control = new FakeControl();
  const agent = new DatasetAgent({
    nodeUuid: ME,
    era: 'era-1',
    host: '10.0.0.1',
    instanceId: 'i-me',
    driver,
    hostOps: host,
    control,
    mountRoot: '/flocker',
    defaultSize: 64 * MiB,
    resyncIntervalMs: 200,
    concurrency: 2,
    backoffInitialMs: 20,
    backoffMaxMs: 50,
    logger: winston.createLogger({ silent: true }),
    pollWaitMs: 200,
    ...extra,
  });
  return { driver, host, control, agent };
}

async function eventually(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 5));
  }
}

const dataset = { dataset_id: DS, primary: ME, maximum_size: 64 * MiB, metadata: {}, deleted: false };

describe('DatasetAgent loop (fake driver, host and control service)', () => {
  it('converges a new dataset to mounted and reports it, then destroys it when deleted', async () => {
    const { driver, host, control, agent } = setup();
    agent.start();
    control.setDatasets([dataset]);
    await eventually(() => control.last()?.manifestations.some((m) => m.status === 'mounted') === true);
    expect(control.last()!.manifestations).toEqual([
      { dataset_id: DS, blockdevice_id: 'vol-0', size: 64 * MiB, status: 'mounted', device_path: '/dev/fake/vol-0', path: `/flocker/${DS}` },
    ]);
    expect(control.last()).toMatchObject({ uuid: ME, era: 'era-1', host: '10.0.0.1', instance_id: 'i-me', backend: 'fake', errors: [] });
    expect(host.mounts).toHaveLength(1);

    control.setDatasets([{ ...dataset, deleted: true }]);
    await eventually(() => driver.volumes.size === 0 && control.last()?.volumes?.length === 0);
    expect(host.mounts).toHaveLength(0);
    await agent.stop();
  });

  it('retries a failing action with backoff and reports the error until it succeeds', async () => {
    const { host, control, agent } = setup();
    host.failMounts = 3;
    agent.start();
    control.setDatasets([dataset]);
    await eventually(() => (control.last()?.errors ?? []).some((e) => e.attempts >= 2));
    const error = control.last()!.errors[0]!;
    expect(error).toMatchObject({ dataset_id: DS, action: 'mount', code: 'BACKEND_ERROR', message: 'mount: no luck' });
    await eventually(() => control.last()?.manifestations[0]?.status === 'mounted');
    expect(control.last()!.errors).toEqual([]);
    await agent.stop();
  });

  it('calls the crash hook right after the chosen action', async () => {
    let crashed = 0;
    const { driver, control, agent } = setup({ crash: () => crashed++, crashAfter: { kind: 'create', count: 1 } });
    agent.start();
    control.setDatasets([dataset]);
    await eventually(() => crashed === 1);
    expect(driver.volumes.size).toBe(1);
    await agent.stop();
  });
});
