/**
 * The containers of this host that use Flocker volumes, through the local
 * dockerd's Engine API (unix socket; no dependency beyond node:http). Used by
 * self-fencing: a cut-off node stops them before unmounting their volumes.
 */
import { request } from 'node:http';
import { z } from 'zod';

/** What to stop the users of: host paths (bind mounts) and Docker volume names (the Flocker plugin's). */
export interface StopTargets {
  readonly paths: readonly string[];
  /** Names of Docker volumes of a non-local driver (Docker shows no Source for a plugin's volume). */
  readonly volumes: readonly string[];
}

export interface ContainerStopper {
  /**
   * Kills every running, paused or restarting container with a mount whose source
   * is one of the paths (or below one), or that is one of the named volumes of a
   * plugin driver; returns their names. Throws when Docker cannot be asked.
   */
  stopContainersUsing(targets: StopTargets): Promise<string[]>;
}

const ContainerList = z.array(
  z
    .object({
      Id: z.string(),
      Names: z.array(z.string()).default([]),
      State: z.string().optional(),
      Mounts: z
        .array(
          z
            .object({
              Type: z.string().optional(),
              Name: z.string().optional(),
              Driver: z.string().optional(),
              Source: z.string().optional(),
              Destination: z.string().optional(),
            })
            .loose(),
        )
        .default([]),
    })
    .loose(),
);
export type DockerContainer = z.infer<typeof ContainerList>[number];

/** Pure: the containers (of a /containers/json listing) using one of the targets. */
export function containersUsing(containers: readonly DockerContainer[], targets: StopTargets): DockerContainer[] {
  const under = (source: string): boolean => targets.paths.some((p) => source === p || source.startsWith(`${p}/`));
  const volumes = new Set(targets.volumes);
  const uses = (m: DockerContainer['Mounts'][number]): boolean =>
    (m.Source !== undefined && m.Source !== '' && under(m.Source)) ||
    (m.Type === 'volume' &&
      m.Name !== undefined &&
      volumes.has(m.Name) &&
      m.Driver !== undefined &&
      m.Driver !== 'local');
  return containers.filter(
    (c) => ['running', 'paused', 'restarting'].includes(c.State ?? 'running') && c.Mounts.some(uses),
  );
}

function call(
  socketPath: string,
  method: string,
  path: string,
  timeoutMs: number,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`docker ${method} ${path} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

export class DockerContainerStopper implements ContainerStopper {
  constructor(
    private readonly socketPath: string,
    private readonly timeoutMs = 5000,
  ) {}

  async stopContainersUsing(targets: StopTargets): Promise<string[]> {
    if (targets.paths.length === 0 && targets.volumes.length === 0) return [];
    const listed = await call(this.socketPath, 'GET', '/containers/json?all=1', this.timeoutMs);
    if (listed.status !== 200)
      throw new Error(`docker: listing containers answered ${listed.status}: ${listed.body.slice(0, 200)}`);
    const victims = containersUsing(ContainerList.parse(JSON.parse(listed.body)), targets);
    const stopped: string[] = [];
    for (const c of victims) {
      // SIGKILL: a fence must not wait for a graceful stop; a paused container is killed as well.
      const r = await call(
        this.socketPath,
        'POST',
        `/containers/${encodeURIComponent(c.Id)}/kill?signal=SIGKILL`,
        this.timeoutMs,
      );
      // 409: not running any more (it stopped meanwhile): that is what we wanted.
      if (r.status !== 204 && r.status !== 409 && r.status !== 404)
        throw new Error(`docker: killing ${c.Id} answered ${r.status}: ${r.body.slice(0, 200)}`);
      stopped.push((c.Names[0] ?? c.Id).replace(/^\//, ''));
    }
    return stopped;
  }
}
