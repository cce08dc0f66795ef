/**
 * The machine's own Docker bridge, which tests and the cluster harness must leave as
 * they found it (issue 17: a private dockerd started with `--bridge none` in the root
 * netns deleted the user's `docker0` — dockerd removes the default bridge interface of
 * its netns when the bridge is disabled — and every `docker run` on the default network
 * of the user's own dockerd failed afterwards).
 */
import * as fs from 'node:fs';

export const DOCKER0 = 'docker0';

/** The interface index of a link of this process's netns (the root netns for tests), or undefined. */
export function linkIndex(name: string, sysClassNet = '/sys/class/net'): number | undefined {
  try {
    const n = Number(fs.readFileSync(`${sysClassNet}/${name}/ifindex`, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Why the bridge is not as it was, or undefined when it is. A bridge that appeared
 * meanwhile (the user started dockerd) is fine; one that vanished or was replaced
 * (another ifindex: deleted and created again) is not.
 */
export function bridgeChange(
  before: number | undefined,
  after: number | undefined,
  name = DOCKER0,
): string | undefined {
  if (before === undefined || before === after) return undefined;
  if (after === undefined) return `the host's ${name} bridge (ifindex ${before}) was deleted`;
  return `the host's ${name} bridge was replaced (ifindex ${before} → ${after})`;
}

export class HostNetworkChanged extends Error {
  readonly code = 'HOST_NETWORK_CHANGED';
  constructor(message: string) {
    super(message);
    this.name = 'HostNetworkChanged';
  }
}

/** Remembers docker0 now; `check()` throws if it was deleted or replaced since. */
export class Docker0Guard {
  readonly before: number | undefined;
  constructor(
    private readonly what: string,
    private readonly index: () => number | undefined = () => linkIndex(DOCKER0),
  ) {
    this.before = this.index();
  }

  check(): void {
    const change = bridgeChange(this.before, this.index());
    if (change !== undefined) throw new HostNetworkChanged(`${change} by ${this.what}`);
  }
}
