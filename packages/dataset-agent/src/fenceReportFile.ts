/**
 * The node's fence report kept in the state directory (FX4's gap after 262773d): the container agent starts again
 * the containers a fence killed once the fence is lifted, reading this report; held only in memory, a dataset agent
 * restarted while fenced lost it and the killed containers stayed stopped for good. Written durably (temp, fsync,
 * rename, fsync of the directory) at each change, off the event loop (SelfFencing never waits for it: F10); read at
 * start, checked against the report schema: a file that does not parse is logged and ignored (as no report: the
 * containers then stay stopped, as before). Beside the report, `recovered_at`: when the fence was lifted, from which a
 * recovered fence ages out of the node report (SelfFencing's RECOVERED_REPORT_MS); a file an older agent wrote has
 * none, and its modification time stands in for it. One that does not parse as a time is left out (the reader then
 * takes "now", as for one ahead of its wall clock: R2-3), never costing the report itself (the victims' names).
 */
import { readFileSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { NodeReport, writeFileDurable, type DurableFileOps } from '@flocker/api';
import type winston from 'winston';
import { z } from 'zod';
import { errorMessage } from './errors';
import type { FenceReport } from './SelfFencing';

export const FENCE_REPORT_FILE = 'fence-report.json';

const FenceReportSchema = NodeReport.shape.fencing.unwrap();
/** The file: the report as sent, and when it was lifted (never sent: the node report's fencing is strict). */
const KeptFenceSchema = FenceReportSchema.extend({ recovered_at: z.unknown().optional() });

/**
 * A fence report kept, with when the fence was lifted (wall clock ms; only for a 'recovered' one). As written: it may
 * be ahead of the wall clock now (the reader, SelfFencing, takes such a one as now).
 */
export interface KeptFence {
  readonly report: FenceReport;
  readonly recoveredAt?: number;
}

/** Where SelfFencing keeps its report. */
export interface FenceReportStore {
  /** The report kept, if any (undefined also for a corrupt file, logged). */
  load(): KeptFence | undefined;
  /** Keeps the report; never rejects (a failure is logged: the report still goes out from memory). */
  save(report: FenceReport, recoveredAt?: number): Promise<void>;
}

export function fenceReportFile(
  stateDir: string,
  logger: Pick<winston.Logger, 'warn'>,
  ops?: DurableFileOps,
): FenceReportStore {
  const file = join(stateDir, FENCE_REPORT_FILE);
  return {
    load: () => {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
          logger.warn('cannot read the kept fence report; ignored', { file, error: errorMessage(e) });
        return undefined;
      }
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (e) {
        logger.warn('the kept fence report is not JSON; ignored', { file, error: errorMessage(e) });
        return undefined;
      }
      const parsed = KeptFenceSchema.safeParse(json);
      if (!parsed.success) {
        logger.warn('the kept fence report is not a fence report; ignored', { file, error: parsed.error.message });
        return undefined;
      }
      const { recovered_at: recoveredAt, ...report } = parsed.data;
      if (report.state !== 'recovered') return { report };
      if (recoveredAt !== undefined) {
        const ms =
          typeof recoveredAt === 'string' && z.iso.datetime().safeParse(recoveredAt).success
            ? Date.parse(recoveredAt)
            : NaN;
        if (Number.isFinite(ms)) return { report, recoveredAt: ms };
        logger.warn('the kept fence report has a lift time that is not one; taken as now', { file, recoveredAt });
        return { report };
      }
      try {
        return { report, recoveredAt: statSync(file).mtimeMs };
      } catch {
        return { report };
      }
    },
    save: async (report, recoveredAt) => {
      const kept =
        report.state === 'recovered' && recoveredAt !== undefined
          ? { ...report, recovered_at: new Date(recoveredAt).toISOString() }
          : report;
      try {
        await mkdir(stateDir, { recursive: true });
        await writeFileDurable(file, JSON.stringify(kept) + '\n', {
          mode: 0o644,
          ...(ops !== undefined ? { ops } : {}),
        });
      } catch (e) {
        logger.warn('cannot keep the fence report in the state directory', { file, error: errorMessage(e) });
      }
    },
  };
}
