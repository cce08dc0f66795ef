import { ManualClock } from '@flocker/runtime/testing';
import { StorageError, type SpareCapable, type SpareVolume } from '@flocker/storage-drivers';
import winston from 'winston';
import { MAX_DEFER_MS, SETTLE_MS, SparePool } from './SparePool';

const MiB = 1024 * 1024;

/** Spares in memory; makes fail while `failing` is set. */
class MemorySpares implements SpareCapable {
  spares: SpareVolume[] = [];
  makes = 0;
  failing = false;
  claimError: Error | undefined;
  async listSpares() {
    return [...this.spares];
  }
  async makeSpare(size: number) {
    this.makes++;
    if (this.failing) throw new StorageError('BACKEND_ERROR', 'mkfs.ext4: No space left on device');
    const spare = { id: `s${this.makes}`, size };
    this.spares.push(spare);
    return spare;
  }
  claimOptions: unknown[] = [];
  async claimSpare(datasetId: string, size: number, options?: object) {
    this.claimOptions.push(options);
    if (this.claimError !== undefined) throw this.claimError;
    const s = this.spares.find((x) => x.size === size);
    if (s === undefined) return undefined;
    this.spares = this.spares.filter((x) => x !== s);
    return { blockdeviceId: s.id, datasetId, size, attachedTo: null };
  }
  async destroySpare(id: string) {
    this.spares = this.spares.filter((x) => x.id !== id);
  }
  /** Spares without a loop device of their own (let go by ./dev down, a reboot, losetup -D). */
  unbound = new Set<string>();
  calls: string[] = [];
  async tidySpares() {
    this.calls.push('tidy');
    return [];
  }
  async bindSpares() {
    this.calls.push('bind');
    const bound = [...this.unbound];
    this.unbound.clear();
    return bound;
  }
}

function setup(perClass = 2) {
  const clock = new ManualClock();
  const driver = new MemorySpares();
  let idle = true;
  const pool = new SparePool({
    driver,
    perClass,
    pinned: [64 * MiB],
    logger: winston.createLogger({ silent: true }),
    clock,
    queueIdle: () => idle,
  });
  return { clock, driver, pool, setIdle: (v: boolean) => (idle = v) };
}

describe('SparePool (issue 23)', () => {
  it('fills only once the work queue has been idle for the settling time; a kick pushes it back; busy then: nothing until the next kick', async () => {
    const { clock, driver, pool, setIdle } = setup();
    pool.start();
    await clock.advance(SETTLE_MS - 10);
    expect(driver.makes).toBe(0);
    pool.kick(); // more work just ended: wait the whole settling time again
    await clock.advance(SETTLE_MS - 10);
    expect(driver.makes).toBe(0);
    setIdle(false);
    await clock.advance(100);
    expect(driver.makes).toBe(0);
    setIdle(true);
    await clock.advance(SETTLE_MS * 3);
    expect(driver.makes).toBe(0); // nobody kicked
    pool.kick();
    await clock.advanceUntil(() => driver.spares.length === 2, SETTLE_MS + 100, 5);
    expect(driver.spares.map((s) => s.size)).toEqual([64 * MiB, 64 * MiB]);
    await pool.stop();
  });

  it('commands that keep coming push a refill back only up to MAX_DEFER_MS after the first kick, then it runs at the next idle moment', async () => {
    const { clock, driver, pool, setIdle } = setup(1);
    const started = clock.now();
    // A command every SETTLE_MS / 2: each one's work ends with a kick (the queue went idle).
    const kicks = async (until: number) => {
      while (clock.now() - started < until && driver.makes === 0) {
        setIdle(false);
        await clock.advance(50);
        setIdle(true);
        pool.kick();
        await clock.advance(SETTLE_MS / 2 - 50);
      }
    };
    await kicks(MAX_DEFER_MS - SETTLE_MS);
    expect(driver.makes).toBe(0); // pushed back so far: quiet first
    await kicks(MAX_DEFER_MS + SETTLE_MS);
    expect(driver.makes).toBe(1);
    expect(clock.now() - started).toBeLessThanOrEqual(MAX_DEFER_MS + SETTLE_MS / 2);
    // The bound counts from the first kick after the last refill started: the next one settles again.
    driver.spares = [];
    pool.kick();
    await clock.advance(SETTLE_MS - 10);
    expect(driver.makes).toBe(1);
    await clock.advanceUntil(() => driver.makes === 2, 100, 5);
    // Made while idle only: past the bound, a busy queue still makes nothing; its next idle moment does at once.
    setIdle(false);
    driver.spares = [];
    pool.kick();
    await clock.advance(MAX_DEFER_MS * 2);
    expect(driver.makes).toBe(2);
    setIdle(true);
    pool.kick();
    await clock.advanceUntil(() => driver.makes === 3, 10, 5);
    await pool.stop();
  });

  it('stops making when work arrives between two spares', async () => {
    const { clock, driver, pool, setIdle } = setup(3);
    const make = driver.makeSpare.bind(driver);
    driver.makeSpare = async (size) => {
      const made = await make(size);
      setIdle(false); // a dataset arrived while this spare was made
      return made;
    };
    pool.kick();
    await clock.advance(SETTLE_MS + 50);
    expect(driver.makes).toBe(1);
    await pool.stop();
  });

  it('a failed make is tried again after 5 s, not at every kick', async () => {
    const { clock, driver, pool } = setup(1);
    driver.failing = true;
    pool.kick();
    await clock.advance(SETTLE_MS + 10);
    expect(driver.makes).toBe(1);
    pool.kick();
    await clock.advance(SETTLE_MS + 10);
    expect(driver.makes).toBe(1);
    driver.failing = false;
    await clock.advanceUntil(() => driver.spares.length === 1, 5_000, 10);
    expect(driver.makes).toBe(2);
    await pool.stop();
  });

  it('binds devices again to spares that lost theirs: at start after the tidy, and before each refill', async () => {
    const { clock, driver, pool } = setup(1);
    driver.spares.push({ id: 'old', size: 64 * MiB });
    driver.unbound.add('old');
    pool.start();
    await clock.advance(1);
    expect(driver.calls).toEqual(['tidy', 'bind']);
    expect(driver.unbound.size).toBe(0);
    // Let go again while the agent runs (losetup -D by an operator): the next refill binds it.
    driver.unbound.add('old');
    await clock.advance(SETTLE_MS + 10);
    expect(driver.calls).toEqual(['tidy', 'bind', 'bind']);
    expect(driver.unbound.size).toBe(0);
    expect(driver.makes).toBe(0); // the class is full
    // A failing bind is only logged: the refill goes on.
    driver.bindSpares = async () => {
      throw new StorageError('BACKEND_ERROR', 'pool lock timed out');
    };
    driver.spares = [];
    pool.kick();
    await clock.advanceUntil(() => driver.spares.length === 1, SETTLE_MS + 100, 5);
    await pool.stop();
  });

  it('a claim learns the size class; a failing claim falls back to the create, except DATASET_HAS_VOLUME', async () => {
    const { driver, pool } = setup();
    expect(await pool.claim('d1', 128 * MiB, {})).toBeUndefined();
    expect(pool.sizeClasses).toEqual([64 * MiB, 128 * MiB]);
    // Always attached by the claim (pre-attached spares: no losetup on the critical path).
    expect(driver.claimOptions).toEqual([{ attach: true }]);
    driver.claimError = new StorageError('BACKEND_ERROR', 'pool lock timed out');
    expect(await pool.claim('d2', 64 * MiB, {})).toBeUndefined();
    driver.claimError = new StorageError('DATASET_HAS_VOLUME', 'dataset d3 already has volume v');
    await expect(pool.claim('d3', 64 * MiB, { onlyVolume: true })).rejects.toMatchObject({
      code: 'DATASET_HAS_VOLUME',
    });
  });
});
