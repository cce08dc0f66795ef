import { FreshRead } from './FreshRead';

/** A read per call to `read`, finished by hand: releases[i]() resolves read i + 1 with i + 1. */
function manualReads(): { read: () => Promise<number>; releases: Array<() => void>; started: () => number } {
  const releases: Array<() => void> = [];
  return {
    read: () =>
      new Promise<number>((resolve) => {
        const n = releases.length + 1;
        releases.push(() => resolve(n));
      }),
    releases,
    started: () => releases.length,
  };
}

describe('FreshRead', () => {
  it('never returns a read that started before the call, and shares the next one', async () => {
    const reads = manualReads();
    const r = new FreshRead(reads.read);
    const first = r.get(); // read 1 starts
    const second = r.get(); // read 1 is running: waits for read 2
    const third = r.get(); // shares read 2
    expect(reads.started()).toBe(1);
    reads.releases[0]!();
    expect(await first).toBe(1);
    await new Promise((res) => setImmediate(res));
    expect(reads.started()).toBe(2);
    reads.releases[1]!();
    expect(await second).toBe(2);
    expect(await third).toBe(2);
    const fourth = r.get(); // nothing running: a new read
    expect(reads.started()).toBe(3);
    reads.releases[2]!();
    expect(await fourth).toBe(3);
  });

  it('hands the callers of one read the very same result (one sysfs scan, not a copy per caller)', async () => {
    let started = 0;
    const finish: Array<() => void> = [];
    const scanner = new FreshRead(
      () =>
        new Promise<Array<{ device: string }>>((resolve) => {
          const n = ++started;
          finish.push(() => resolve([{ device: `/dev/loop${n}` }]));
        }),
    );
    const first = scanner.get();
    const second = scanner.get();
    const third = scanner.get();
    expect(started).toBe(1);
    finish[0]!();
    expect((await first)[0]?.device).toBe('/dev/loop1');
    await new Promise((r) => setImmediate(r));
    expect(started).toBe(2);
    finish[1]!();
    expect((await second)[0]?.device).toBe('/dev/loop2');
    expect(await third).toBe(await second);
  });

  it('passes failures to the callers of that read only', async () => {
    let n = 0;
    const r = new FreshRead(async () => {
      n++;
      if (n === 1) throw new Error('boom');
      return n;
    });
    const a = r.get();
    const b = r.get();
    await expect(a).rejects.toThrow('boom');
    await expect(b).resolves.toBe(2);
  });
});
