/**
 * An agent killed between fsfreeze -f and -u (kill -9 while it took a snapshot) leaves
 * the file system frozen: every write on it blocks, until someone thaws it. So at start,
 * before anything else touches the mounts, the agent thaws every mount it manages
 * (<mountRoot>/<dataset uuid>); one that is not frozen is left as it is.
 */
import { basename, dirname } from 'node:path';
import type winston from 'winston';
import { errorMessage } from './errors';
import type { HostOps } from './HostOps';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Thaws the managed mounts; answers those that were frozen. A failure is logged, not thrown (the loop goes on). */
export async function thawManagedMounts(host: HostOps, mountRoot: string, logger: winston.Logger): Promise<string[]> {
  const root = mountRoot.replace(/\/+$/, '');
  const ours = (await host.listMounts())
    .map((m) => m.mountPoint)
    .filter((p) => dirname(p) === root && UUID.test(basename(p)));
  const thawed: string[] = [];
  for (const mountPoint of [...new Set(ours)].sort()) {
    try {
      if (await host.thaw(mountPoint)) thawed.push(mountPoint);
    } catch (e) {
      logger.error('cannot thaw a mount at start', { mountPoint, error: errorMessage(e) });
    }
  }
  if (thawed.length > 0) logger.warn('thawed file systems left frozen (an agent stopped mid-snapshot)', { thawed });
  return thawed;
}
