/**
 * What the plugin needs to see of its own host's dockerd: which containers exist, in
 * which state, with which mounts; and when dockerd (re)appears. An interface, so the
 * reconcile logic is tested against a fake; `DockerodeView` is the real one (Docker
 * Engine API on the unix socket through dockerode).
 */
import { errorMessage } from '@flocker/runtime';
import Docker from 'dockerode';
import type { Logger } from 'winston';
import { z } from 'zod';

export interface DockerMount {
  type: string;
  /** Volume name (volume mounts). */
  name?: string;
  /** Volume driver (volume mounts). */
  driver?: string;
  /** Host path: for a plugin volume, the Mountpoint its Mount answered (empty before it is mounted). */
  source: string;
}

export interface DockerContainer {
  id: string;
  /** Docker's state: created, running, paused, restarting, removing, exited, dead. */
  state: string;
  /** When the container was created (ms since the epoch). */
  createdMs: number;
  mounts: readonly DockerMount[];
}

/** A volume as Docker's volume list (GET /volumes) shows it: its name and the driver name Docker knows it under. */
export interface DockerVolume {
  name: string;
  driver: string;
}

/** dockerd cannot be reached (not started yet, restarting, socket missing): nothing can be concluded. */
export class DockerUnreachableError extends Error {
  readonly code = 'DOCKER_UNREACHABLE';
  constructor(message: string) {
    super(message);
    this.name = 'DockerUnreachableError';
  }
}

export interface DockerFollowHandlers {
  /** A connection to dockerd was (re)established: at first contact, and each time dockerd comes back. */
  onConnect(): void;
  /** The connection dropped (dockerd stopped, was killed, or restarts). */
  onDisconnect(reason: string): void;
}

export interface DockerView {
  /** Every container of this host's dockerd (any state), with its mounts; DockerUnreachableError if dockerd does not answer. */
  containers(): Promise<DockerContainer[]>;
  /** Every volume dockerd knows (GET /volumes), with its driver name; DockerUnreachableError if dockerd does not answer. */
  volumes(): Promise<DockerVolume[]>;
  /**
   * When the container last finished (State.FinishedAt, ms since the epoch; 0 if it never ran); undefined if the
   * answer is not understood. DockerUnreachableError if dockerd does not answer the inspect, a gone container (404)
   * too: the reconciler counts that as unknown (and logs it at debug, so ordinary removal races show there).
   * Optional: without it inherited mount IDs keep the safety window.
   */
  finishedAt?(id: string): Promise<number | undefined>;
  /** Keep a connection to dockerd (its event stream), reconnecting while it is away. */
  follow(handlers: DockerFollowHandlers): { close(): void };
}

/** Docker's list answer, checked at the boundary (only the fields used). */
const ContainerList = z.array(
  z
    .object({
      Id: z.string(),
      State: z.string(),
      Created: z.number(),
      Mounts: z
        .array(
          z
            .object({
              Type: z.string(),
              Name: z.string().optional(),
              Driver: z.string().optional(),
              Source: z.string().default(''),
            })
            .loose(),
        )
        .nullish(),
    })
    .loose(),
);

/** Docker's volume list answer (GET /volumes), checked at the boundary (only the fields used). */
const VolumeList = z
  .object({
    Volumes: z.array(z.object({ Name: z.string(), Driver: z.string() }).loose()).nullish(),
  })
  .loose();

/** Docker's inspect answer, checked at the boundary (only the field used). */
const ContainerInspect = z.object({ State: z.object({ FinishedAt: z.string() }).loose() }).loose();

export interface DockerodeViewOptions {
  socketPath: string;
  logger: Logger;
  /** Bound on one list request (ms). */
  requestTimeoutMs?: number;
  /** Pause between attempts to reach dockerd while it is away (ms). */
  retryMs?: number;
}

export class DockerodeView implements DockerView {
  private readonly docker: Docker;
  /** Without a request timeout: the event stream is quiet for long stretches. */
  private readonly stream: Docker;

  constructor(private readonly opts: DockerodeViewOptions) {
    this.docker = new Docker({ socketPath: opts.socketPath, timeout: opts.requestTimeoutMs ?? 10_000 });
    this.stream = new Docker({ socketPath: opts.socketPath });
  }

  async containers(): Promise<DockerContainer[]> {
    let raw: unknown;
    try {
      raw = await this.docker.listContainers({ all: true });
    } catch (err) {
      throw new DockerUnreachableError(`dockerd at ${this.opts.socketPath} does not answer: ${errorMessage(err)}`);
    }
    const parsed = ContainerList.safeParse(raw);
    if (!parsed.success)
      throw new DockerUnreachableError(
        `dockerd answered an unexpected container list: ${z.prettifyError(parsed.error)}`,
      );
    return parsed.data.map((c) => ({
      id: c.Id,
      state: c.State,
      createdMs: c.Created * 1000,
      mounts: (c.Mounts ?? []).map((m) => ({
        type: m.Type,
        source: m.Source,
        ...(m.Name !== undefined ? { name: m.Name } : {}),
        ...(m.Driver !== undefined ? { driver: m.Driver } : {}),
      })),
    }));
  }

  async finishedAt(id: string): Promise<number | undefined> {
    let raw: unknown;
    try {
      raw = await this.docker.getContainer(id).inspect();
    } catch (err) {
      throw new DockerUnreachableError(
        `dockerd at ${this.opts.socketPath} does not inspect ${id}: ${errorMessage(err)}`,
      );
    }
    const parsed = ContainerInspect.safeParse(raw);
    if (!parsed.success) return undefined;
    return finishedMsOf(parsed.data.State.FinishedAt);
  }

  async volumes(): Promise<DockerVolume[]> {
    let raw: unknown;
    try {
      raw = await this.docker.listVolumes();
    } catch (err) {
      throw new DockerUnreachableError(
        `dockerd at ${this.opts.socketPath} does not list its volumes: ${errorMessage(err)}`,
      );
    }
    const parsed = VolumeList.safeParse(raw);
    if (!parsed.success)
      throw new DockerUnreachableError(`dockerd answered an unexpected volume list: ${z.prettifyError(parsed.error)}`);
    return (parsed.data.Volumes ?? []).map((v) => ({ name: v.Name, driver: v.Driver }));
  }

  follow(handlers: DockerFollowHandlers): { close(): void } {
    let closed = false;
    let current: NodeJS.ReadableStream | undefined;
    let timer: NodeJS.Timeout | undefined;
    const retryMs = this.opts.retryMs ?? 1_000;
    const connect = () => {
      if (closed) return;
      this.stream.getEvents({ filters: { type: ['container'] } }).then(
        (s) => {
          if (closed) {
            destroy(s);
            return;
          }
          current = s;
          let ended = false;
          const end = (reason: string) => {
            if (ended) return;
            ended = true;
            current = undefined;
            if (closed) return;
            handlers.onDisconnect(reason);
            timer = setTimeout(connect, retryMs);
          };
          s.on('data', () => undefined); // Only the connection matters; keep the stream flowing.
          s.on('end', () => end('event stream ended'));
          s.on('close', () => end('event stream closed'));
          s.on('error', (err: Error) => end(err.message));
          handlers.onConnect();
        },
        (err: unknown) => {
          if (closed) return;
          this.opts.logger.debug('dockerd not reachable; retrying', {
            socket: this.opts.socketPath,
            error: errorMessage(err),
          });
          timer = setTimeout(connect, retryMs);
        },
      );
    };
    connect();
    return {
      close: () => {
        closed = true;
        clearTimeout(timer);
        if (current) destroy(current);
      },
    };
  }
}

/** Docker's FinishedAt as ms since the epoch: its zero time ("0001-01-01T00:00:00Z", never ran) is 0. */
export function finishedMsOf(text: string): number | undefined {
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) return undefined;
  return ms < 0 ? 0 : ms;
}

function destroy(s: NodeJS.ReadableStream): void {
  if ('destroy' in s && typeof s.destroy === 'function') (s as NodeJS.ReadableStream & { destroy(): void }).destroy();
}
