import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { paired } from './abBench';
import { waitForVolumes } from './bench';

describe('the A/B bench of two plugin builds (issue 23)', () => {
  it('compares pair by pair: medians of each side and of B − A, and how often B was faster', () => {
    expect(paired([10, 20, 30, 40], [9, 22, 27, 41])).toEqual({
      pairs: 4,
      a_median_ms: 25,
      b_median_ms: 24.5,
      diff_median_ms: 0, // diffs -1, 2, -3, 1
      b_faster: 2,
    });
    // Unequal lengths (a run cut short): only whole pairs count.
    expect(paired([1, 2, 3], [1, 2]).pairs).toBe(2);
  });

  it('waits for the agent to have destroyed removed volumes: at most N images left in the pool', async () => {
    const pool = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-ab-pool-'));
    try {
      expect(await waitForVolumes(pool, 0)).toBe(true); // no volumes/ yet
      fs.mkdirSync(path.join(pool, 'volumes'));
      for (const n of ['a.img', 'a.json', 'b.img']) fs.writeFileSync(path.join(pool, 'volumes', n), '');
      setTimeout(() => fs.rmSync(path.join(pool, 'volumes', 'b.img')), 100);
      const t0 = Date.now();
      expect(await waitForVolumes(pool, 1)).toBe(true);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(90);
    } finally {
      fs.rmSync(pool, { recursive: true, force: true });
    }
  });
});
