/**
 * The agent's Docker I/O through dockerode: list the Flocker-labelled containers,
 * create/start/remove them. Volumes are Flocker datasets through the Docker plugin
 * (`--volume-driver flocker`, no copy-up), which waits until the dataset is mounted
 * on this node and moves it here if needed.
 */
import { errorMessage } from '@flocker/runtime';
import Docker from 'dockerode';
import { z } from 'zod';
import {
  LABEL_CONFIG,
  LABEL_NAME,
  LABEL_SPEC,
  type DockerState,
  type ObservedContainer,
} from './calculateContainerChanges';
import type { DockerSpec } from './desiredContainers';

export interface ContainerRuntime {
  list(): Promise<ObservedContainer[]>;
  /** `config`: the configuration identity, kept as a label (LABEL_CONFIG). */
  create(spec: DockerSpec, hash: string, config?: string): Promise<void>;
  start(id: string): Promise<void>;
  remove(id: string): Promise<void>;
}

const STATES: readonly DockerState[] = ['created', 'running', 'paused', 'restarting', 'removing', 'exited', 'dead'];

export class DockerOps implements ContainerRuntime {
  private readonly docker: Docker;

  constructor(
    socketPath: string,
    private readonly volumeDriver = 'flocker',
    /** Seconds Docker waits after SIGTERM before SIGKILL. */
    private readonly stopSeconds = 5,
  ) {
    this.docker = new Docker({ socketPath });
  }

  async list(): Promise<ObservedContainer[]> {
    const infos = await this.docker.listContainers({ all: true, filters: { label: [LABEL_NAME] } });
    return Promise.all(
      infos.map(async (i) => {
        const state = STATES.find((s) => s === i.State) ?? 'dead';
        const name = i.Labels[LABEL_NAME] ?? '';
        const config = i.Labels[LABEL_CONFIG];
        const observed: ObservedContainer = {
          id: i.Id,
          name,
          hash: i.Labels[LABEL_SPEC],
          ...(config !== undefined ? { config } : {}),
          state,
          image: i.Image,
        };
        // When an exited container last ran tells whether the node's fence stopped it (calculateContainerChanges);
        // its exit code and restarts, why it does not run (reportOf), as for one up for seconds only (a crash loop's
        // short run: Docker's Status says "Up 3 seconds"; inspected only then, not every container every turn).
        const recent = state === 'running' && /^Up (Less than a second|\d+ seconds?)\b/.test(i.Status);
        return state === 'exited' || state === 'restarting' || recent
          ? { ...observed, ...(await this.times(i.Id)) }
          : observed;
      }),
    );
  }

  private async times(id: string): Promise<Inspected> {
    try {
      return inspected(await this.docker.getContainer(id).inspect());
    } catch (err) {
      // Gone meanwhile: the next turn lists it no more.
      if (statusOf(err) === 404) return {};
      throw err;
    }
  }

  async create(spec: DockerSpec, hash: string, config?: string): Promise<void> {
    const exposed: Record<string, object> = {};
    const bindings: Record<string, { HostPort: string }[]> = {};
    for (const p of spec.ports) {
      exposed[`${p.internal}/tcp`] = {};
      bindings[`${p.internal}/tcp`] = [...(bindings[`${p.internal}/tcp`] ?? []), { HostPort: String(p.external) }];
    }
    const created: Docker.Container = await this.docker.createContainer({
      name: spec.name,
      Image: spec.image,
      Env: spec.env,
      ...(spec.cmd !== undefined ? { Cmd: spec.cmd } : {}),
      Labels: {
        [LABEL_NAME]: spec.name,
        [LABEL_SPEC]: hash,
        ...(config !== undefined ? { [LABEL_CONFIG]: config } : {}),
      },
      ExposedPorts: exposed,
      HostConfig: {
        PortBindings: bindings,
        RestartPolicy: spec.restartPolicy,
        ...(spec.cpuShares !== undefined ? { CpuShares: spec.cpuShares } : {}),
        ...(spec.memory !== undefined ? { Memory: spec.memory } : {}),
        ...(spec.volume !== undefined
          ? {
              Mounts: [
                {
                  Type: 'volume',
                  Source: spec.volume.name,
                  Target: spec.volume.mountpoint,
                  VolumeOptions: { NoCopy: true, Labels: {}, DriverConfig: { Name: this.volumeDriver, Options: {} } },
                },
              ],
            }
          : {}),
      },
    });
    await created.start();
  }

  async start(id: string): Promise<void> {
    await this.docker.getContainer(id).start();
  }

  async remove(id: string): Promise<void> {
    const c = this.docker.getContainer(id);
    try {
      await c.stop({ t: this.stopSeconds });
    } catch (err) {
      // 304: already stopped; 404: already gone. Anything else surfaces from remove().
      if (statusOf(err) === 404) return;
    }
    try {
      await c.remove({ force: true });
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
  }
}

const ContainerTimes = z.object({
  Created: z.string().optional(),
  RestartCount: z.number().int().nonnegative().optional(),
  State: z
    .object({
      StartedAt: z.string().optional(),
      FinishedAt: z.string().optional(),
      ExitCode: z.number().int().optional(),
      Running: z.boolean().optional(),
      Restarting: z.boolean().optional(),
    })
    .loose(),
});

type Inspected = Pick<ObservedContainer, 'startedAt' | 'finishedAt' | 'createdAt' | 'exitCode' | 'restartCount'>;

/**
 * What `docker inspect` tells of a container's runs (pure). Its ExitCode unless it runs again: Docker resets it to 0 at
 * each start, so one started again between the list and the inspect would read as "exited with code 0". In the restart
 * back-off Docker shows Running true too, with Restarting true and ExitCode the last exit (moby container/state.go,
 * SetRestarting): that code is kept (review FR-2).
 */
export function inspected(json: unknown): Inspected {
  const parsed = ContainerTimes.safeParse(json);
  if (!parsed.success) return {};
  const { State, Created, RestartCount } = parsed.data;
  const startedAt = dockerTime(State.StartedAt);
  const finishedAt = dockerTime(State.FinishedAt);
  const createdAt = dockerTime(Created);
  return {
    ...(startedAt !== undefined ? { startedAt } : {}),
    ...(finishedAt !== undefined ? { finishedAt } : {}),
    ...(createdAt !== undefined ? { createdAt } : {}),
    ...(State.ExitCode !== undefined && (State.Running !== true || State.Restarting === true)
      ? { exitCode: State.ExitCode }
      : {}),
    ...(RestartCount !== undefined ? { restartCount: RestartCount } : {}),
  };
}

/** Docker's RFC 3339 time (ns precision) in ms; undefined for its zero time (0001-01-01: never). */
export function dockerTime(t: string | undefined): number | undefined {
  if (t === undefined) return undefined;
  const ms = Date.parse(t);
  return Number.isNaN(ms) || ms <= 0 ? undefined : ms;
}

export function statusOf(err: unknown): number | undefined {
  if (typeof err === 'object' && err !== null && 'statusCode' in err && typeof err.statusCode === 'number')
    return err.statusCode;
  return undefined;
}

/** Docker's error message without dockerode's "(HTTP code 409) unexpected - " prefix. */
export function dockerMessage(err: unknown): string {
  if (typeof err === 'object' && err !== null && 'json' in err) {
    const json = err.json;
    if (typeof json === 'object' && json !== null && 'message' in json && typeof json.message === 'string')
      return json.message;
  }
  return errorMessage(err);
}
