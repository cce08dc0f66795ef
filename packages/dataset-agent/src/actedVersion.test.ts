import { ActedVersion } from './actedVersion';

/** A worker that runs until released. */
function gate(): { work: () => Promise<void>; release: () => void } {
  let release = () => {};
  const done = new Promise<void>((resolve) => (release = resolve));
  return { work: () => done, release };
}

describe('ActedVersion (session 10: the configuration version a report carries)', () => {
  it('is the latest version received while no work runs; nothing without a version', () => {
    let latest: number | undefined;
    const acted = new ActedVersion(
      () => latest,
      () => undefined,
    );
    expect(acted.reported()).toEqual({});
    latest = 4;
    expect(acted.reported()).toEqual({ configuration_version: 4 });
    latest = 9;
    expect(acted.current()).toBe(9);
  });

  it('stays at the start version of work that began before the latest (an unmount for a move since undone), then rises and says so once', async () => {
    let latest = 11;
    const rose: number[] = [];
    const acted = new ActedVersion(
      () => latest,
      () => rose.push(acted.current() ?? -1),
    );
    const unmount = gate();
    const running = acted.track(unmount.work);
    expect(acted.reported()).toEqual({ configuration_version: 11 });
    latest = 12; // the move back arrives while the worker (decided at 11) runs
    const other = gate();
    const second = acted.track(other.work); // started at 12
    // Its last report is built while it still runs (DatasetWorker asks for it before returning): still 11.
    expect(acted.reported()).toEqual({ configuration_version: 11 });
    unmount.release();
    await running;
    // Only the worker started at 12 runs: 12, above the last report's 11: said at once.
    expect(rose).toEqual([12]);
    expect(acted.reported()).toEqual({ configuration_version: 12 });
    other.release();
    await second;
    // Its end changes nothing the last report did not say.
    expect(rose).toEqual([12]);
  });

  it('a worker that failed ends its hold too', async () => {
    let latest = 3;
    const acted = new ActedVersion(
      () => latest,
      () => undefined,
    );
    const failing = acted.track(async () => {
      await Promise.resolve();
      throw new Error('boom');
    });
    latest = 5;
    expect(acted.current()).toBe(3);
    await expect(failing).rejects.toThrow('boom');
    expect(acted.current()).toBe(5);
  });

  it('adopted: a newer version with no work running is said at once; with work running, its end says it', async () => {
    let latest = 1;
    let rose = 0;
    const acted = new ActedVersion(
      () => latest,
      () => (rose += 1),
    );
    acted.reported();
    acted.adopted();
    expect(rose).toBe(0); // nothing new
    latest = 2;
    acted.adopted();
    expect(rose).toBe(1);
    acted.reported();
    const w = gate();
    const running = acted.track(w.work);
    latest = 3;
    acted.adopted();
    expect(rose).toBe(1);
    w.release();
    await running;
    expect(rose).toBe(2);
  });

  it('a configuration tag of another form: no version at all, even with work running', async () => {
    let latest: number | undefined = 7;
    const acted = new ActedVersion(
      () => latest,
      () => undefined,
    );
    latest = undefined;
    const w = gate();
    const running = acted.track(w.work);
    latest = 8;
    expect(acted.reported()).toEqual({});
    w.release();
    await running;
    expect(acted.reported()).toEqual({ configuration_version: 8 });
  });

  it('work decided on an earlier version than the latest (decidedOn) holds reports at that version', async () => {
    const acted = new ActedVersion(
      () => 5,
      () => undefined,
    );
    const w = gate();
    const running = acted.track(w.work, { version: 4 });
    expect(acted.reported()).toEqual({ configuration_version: 4 });
    const none = gate();
    const unversioned = acted.track(none.work, { version: undefined });
    expect(acted.reported()).toEqual({});
    none.release();
    w.release();
    await Promise.all([running, unversioned]);
    expect(acted.reported()).toEqual({ configuration_version: 5 });
  });
});
