import { FreshRead } from './FreshRead';

describe('FreshRead', () => {
  it('never returns a read that started before the call, and shares the next one', async () => {
    let started = 0;
    const releases: Array<() => void> = [];
    const r = new FreshRead(
      () =>
        new Promise<number>((resolve) => {
          const n = ++started;
          releases.push(() => resolve(n));
        }),
    );
    const first = r.get(); // read 1 starts
    const second = r.get(); // read 1 is running: waits for read 2
    const third = r.get(); // shares read 2
    expect(started).toBe(1);
    releases[0]!();
    expect(await first).toBe(1);
    await new Promise((res) => setImmediate(res));
    expect(started).toBe(2);
    releases[1]!();
    expect(await second).toBe(2);
    expect(await third).toBe(2);
    const fourth = r.get(); // nothing running: a new read
    expect(started).toBe(3);
    releases[2]!();
    expect(await fourth).toBe(3);
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
