/**
 * Docker runs with a Flocker volume that the cluster e2e tests share (review-u2-heal-split-brain,
 * review-u2-reboot-stale-lease).
 */
import { TINY_IMAGE, VOLUME_DRIVER, type ClusterHost, type RunResult } from './cluster';

/** docker run's arguments for `volume`, through Flocker's driver, at /data. */
export function flockerVolumeArgs(volume: string): string[] {
  return ['-v', `${volume}:/data`, `--volume-driver=${VOLUME_DRIVER}`];
}

/**
 * `docker run -d` on `host` of the tiny image running the shell `script`, with `args` (the volume's
 * and any other docker run arguments); unchecked (the caller looks at its code), up to 150 s for
 * the plugin's Mount.
 */
export function runDetachedScript(host: ClusterHost, args: readonly string[], script: string): Promise<RunResult> {
  return host.docker(['run', '-d', ...args, TINY_IMAGE, 'sh', '-c', script], { check: false, timeoutMs: 150_000 });
}
