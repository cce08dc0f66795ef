/**
 * One Prometheus registry per process: Node's default metrics (CPU, memory, event-loop lag, GC) plus the
 * process's own, all served by one listener. Tests make their own registries.
 */
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';

export type FlockerProcess = 'control-service' | 'dataset-agent' | 'docker-plugin' | 'container-agent' | 'csi-driver';

/** A fresh registry: default Node metrics and flocker_process_info{process, version}. */
export function newRegistry(processName: FlockerProcess, version = '0.1.0'): Registry {
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

let shared: { registry: Registry; processName: FlockerProcess } | undefined;

/**
 * This process's registry, created on first use. Instrumented code anywhere in the process reaches the same one
 * (no registry threaded through every constructor); a second process name is a programming error.
 */
export function processRegistry(processName: FlockerProcess): Registry {
  if (shared === undefined) shared = { registry: newRegistry(processName), processName };
  else if (shared.processName !== processName && process.env['NODE_ENV'] !== 'test') {
    // Tests run several components in one process; in production one process is one component.
    throw new Error(`this process's metrics belong to ${shared.processName}, not ${processName}`);
  }
  return shared.registry;
}
