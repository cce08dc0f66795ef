/**
 * One Prometheus registry per process: Node's default metrics (CPU, memory, event-loop lag, GC) plus the
 * process's own, all served by one listener. Tests make their own registries.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';

export type FlockerProcess = 'control-service' | 'dataset-agent' | 'docker-plugin' | 'container-agent' | 'csi-driver';

/**
 * This release: the version in this package's package.json, which the Debian packages stamp with
 * theirs (packaging/deb/build.sh), as the agents' reported version is.
 */
export function releaseVersion(): string {
  try {
    const parsed: unknown = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8'));
    if (typeof parsed === 'object' && parsed !== null && 'version' in parsed && typeof parsed.version === 'string')
      return parsed.version;
  } catch {
    // Not beside its package.json (bundled): say so rather than guess.
  }
  return 'unknown';
}

/** A fresh registry: default Node metrics and flocker_process_info{process, version}. */
export function newRegistry(processName: FlockerProcess, version = releaseVersion()): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const info = new Gauge({
    name: 'flocker_process_info',
    help: 'Always 1: which Flocker process this is and its version.',
    labelNames: ['process', 'version'] as const,
    registers: [registry],
  });
  info.set({ process: processName, version }, 1);
  return registry;
}

let shared: Registry | undefined;

/**
 * This process's registry, created on first use (named by the first caller). Instrumented code anywhere in the
 * process reaches the same one: no registry threaded through every constructor.
 */
export function processRegistry(processName: FlockerProcess): Registry {
  // One process is one component in production; tests run several in one process and share the registry.
  shared ??= newRegistry(processName);
  return shared;
}
