import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { newVolumeCallsByRound, pairedMean, runTimeMs } from './abStacks';

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

describe("the whole-stack A/B bench: the plugin's calls from its log", () => {
  it('takes the first Create and the first Mount of each round, and nothing else', () => {
    const call = (c: string, name: string, ms: number) =>
      JSON.stringify({ message: 'plugin call', call: `/VolumeDriver.${c}`, duration_ms: ms, request: { Name: name } });
    const log = [
      call('Create', 'flocker-warm', 90),
      call('Create', 'flocker-new-0', 9.5),
      '{"message":"create timing","create_ms":9}',
      call('Mount', 'flocker-new-0', 25),
      call('Unmount', 'flocker-new-0', 1),
      call('Mount', 'flocker-new-0', 1.1), // the container's Mount after Docker's copy-up one
      call('Create', 'flocker-new-1', 12),
      'not json',
      JSON.stringify({ message: 'plugin call failed', call: '/VolumeDriver.Get', duration_ms: 0.4 }),
    ].join('\n');
    expect([...newVolumeCallsByRound(log, 'flocker-new-')]).toEqual([
      [0, { create: 9.5, mount: 25 }],
      [1, { create: 12 }],
    ]);
  });
});
