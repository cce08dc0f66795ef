/**
 * Test support: stands in for flocker-dataset-agent. Reports "mounted at
 * <mountRoot>/<dataset_id>" for every live dataset whose primary is its node, so the
 * plugin's Mount wait completes without real storage.
 */
import { releaseVersion } from '@flocker/metrics';
import {
  FlockerClient,
  type ActionError,
  type ClusterSnapshot,
  type ManifestationState,
  type NodeReport,
} from '@flocker/api';

export class FakeDatasetAgent {
  /** Datasets the agent "fails" to mount, with the error it reports. */
  readonly failing = new Map<string, string>();
  /** Datasets the agent refuses (a local agent's refusal, issue 24: action 'refuse'), with its code and message. */
  readonly refusing = new Map<string, { code: string; message: string }>();
  /** While paused the agent reports nothing new (a slow or stuck agent). */
  paused = false;
  /** The backend's allocation unit: a device is the size asked for rounded up to it (1 MiB on loopback). */
  allocationUnit = 1;
  private closed = false;
  private lastReport = '';
  private loopDone: Promise<void> | undefined;
  private readonly client: FlockerClient;

  constructor(
    controlUrl: string,
    readonly uuid: string,
    readonly host: string,
    readonly mountRoot: string,
  ) {
    this.client = new FlockerClient({ baseUrl: controlUrl });
  }

  async start(): Promise<void> {
    await this.report([], []);
    const first = await this.client.waitForCluster(undefined, 0);
    await this.converge(first);
    this.loopDone = this.loop(first.generation);
  }

  async stop(): Promise<void> {
    this.closed = true;
    await this.loopDone;
  }

  /** Reports now, also when nothing changed since its last report (a heartbeat: the node heard again). */
  async reportAgain(): Promise<void> {
    this.lastReport = '';
    await this.poke();
  }

  /** Re-evaluate now (e.g. after un-pausing). */
  async poke(): Promise<void> {
    await this.converge(await this.client.waitForCluster(undefined, 0));
  }

  private async loop(since: string): Promise<void> {
    let gen = since;
    while (!this.closed) {
      try {
        const s = await this.client.waitForCluster(gen, 500);
        gen = s.generation;
        if (!this.closed) await this.converge(s);
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  private async converge(s: ClusterSnapshot): Promise<void> {
    if (this.paused) return;
    const manifestations: ManifestationState[] = [];
    const errors: ActionError[] = [];
    for (const d of s.datasets) {
      if (d.deleted || d.primary !== this.uuid) continue;
      const refusal = this.refusing.get(d.dataset_id);
      if (refusal) {
        errors.push({
          dataset_id: d.dataset_id,
          action: 'refuse',
          ...refusal,
          attempts: 0,
          since: new Date(0).toISOString(),
        });
        continue;
      }
      const failure = this.failing.get(d.dataset_id);
      if (failure) {
        errors.push({
          dataset_id: d.dataset_id,
          action: 'mount',
          code: 'MOUNT_FAILED',
          message: failure,
          attempts: 3,
          since: new Date(0).toISOString(),
        });
        continue;
      }
      manifestations.push({
        dataset_id: d.dataset_id,
        blockdevice_id: `fake-${d.dataset_id}`,
        size: Math.ceil((d.maximum_size ?? 0) / this.allocationUnit) * this.allocationUnit,
        status: 'mounted',
        path: `${this.mountRoot}/${d.dataset_id}`,
      });
    }
    await this.report(manifestations, errors);
  }

  private async report(manifestations: ManifestationState[], errors: ActionError[]): Promise<void> {
    const report: NodeReport = {
      uuid: this.uuid,
      era: `era-${this.uuid}`,
      host: this.host,
      instance_id: `instance-${this.host}`,
      backend: 'fake',
      // As a real agent of this release: a node reporting none is served views without the lease hand-over's members.
      version: releaseVersion(),
      manifestations,
      errors,
    };
    const text = JSON.stringify(report);
    if (text === this.lastReport) return; // Reporting the same thing would wake everyone for nothing.
    this.lastReport = text;
    await this.client.reportNodeState(report);
  }
}
