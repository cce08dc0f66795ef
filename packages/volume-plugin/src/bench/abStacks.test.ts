import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pairedMean, runTimeMs } from './abStacks';

describe('the whole-stack A/B bench (issue 23)', () => {
  it("adds up a process's threads' run time from schedstat (ns), NaN when it is gone", () => {
    const proc = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-abstacks-proc-'));
    try {
      for (const [tid, line] of [
        ['42', '12500000 300 7\n'],
        ['43', '2500000 10 1\n'],
      ] as const) {
        fs.mkdirSync(path.join(proc, '42', 'task', tid), { recursive: true });
        fs.writeFileSync(path.join(proc, '42', 'task', tid, 'schedstat'), line);
      }
      expect(runTimeMs(42, proc)).toBe(15);
      expect(runTimeMs(7, proc)).toBeNaN();
      expect(runTimeMs(undefined, proc)).toBeNaN();
      // The real one: this process has run for some time.
      expect(runTimeMs(process.pid)).toBeGreaterThan(0);
    } finally {
      fs.rmSync(proc, { recursive: true, force: true });
    }
  });

  it('gives the mean of the paired differences and its standard error, NaN pairs left out', () => {
    expect(pairedMean([10, 20, 30, NaN], [12, 22, 35, 1])).toEqual({ mean: 3, se: 1, n: 3 });
    expect(pairedMean([], [])).toEqual({ mean: NaN, se: NaN, n: 0 });
  });
});
