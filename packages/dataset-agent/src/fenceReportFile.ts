/**
 * The node's fence report kept in the state directory (FX4's gap after 262773d): the container agent starts again
 * the containers a fence killed once the fence is lifted, reading this report; held only in memory, a dataset agent
 * restarted while fenced lost it and the killed containers stayed stopped for good. Written durably (temp, fsync,
 * rename, fsync of the directory) at each change, off the event loop (SelfFencing never waits for it: F10); read at
 * start, checked against the report schema: a file that does not parse is logged and ignored (as no report: the
 * containers then stay stopped, as before).
 */
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { NodeReport, writeFileDurable, type DurableFileOps } from '@flocker/api';
import type winston from 'winston';
import { errorMessage } from './errors';
import type { FenceReport } from './SelfFencing';

export const FENCE_REPORT_FILE = 'fence-report.json';

const FenceReportSchema = NodeReport.shape.fencing.unwrap();

/** Where SelfFencing keeps its report. */
export interface FenceReportStore {
  /** The report kept, if any (undefined also for a corrupt file, logged). */
  load(): FenceReport | undefined;
  /** Keeps the report; never rejects (a failure is logged: the report still goes out from memory). */
  save(report: FenceReport): Promise<void>;
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
      const parsed = FenceReportSchema.safeParse(json);
      if (!parsed.success) {
        logger.warn('the kept fence report is not a fence report; ignored', { file, error: parsed.error.message });
        return undefined;
      }
      return parsed.data;
    },
    save: async (report) => {
      try {
        await mkdir(stateDir, { recursive: true });
        await writeFileDurable(file, JSON.stringify(report) + '\n', {
          mode: 0o644,
          ...(ops !== undefined ? { ops } : {}),
        });
      } catch (e) {
        logger.warn('cannot keep the fence report in the state directory', { file, error: errorMessage(e) });
      }
    },
  };
}
