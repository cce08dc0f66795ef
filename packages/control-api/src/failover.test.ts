/**
 * Dead nodes and their leases (issue 16): on an injected clock, a node dead for the
 * lease grace loses its unpinned leases through an ordinary configuration commit.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import winston from 'winston';
import { ClusterEvent } from '@flocker/api';
import {
  acquireLease,
  createDataset,
  emptyConfiguration,
  listLeases,
  registerNode,
  releaseDeadNodeLeases,
} from './configuration';
import { FileConfigurationStore, MemoryConfigurationStore, type ConfigurationStore } from './ConfigurationStore';
import { ControlState } from './ControlState';
import { deadFor, EventRing } from './events';
import { checkTiming } from './server';
import { A, B, D1, D2, D3, T0, letterReport as report } from './testing/fixtures';

const T = 10_000;
const G = 5_000;

/** A winston logger whose lines the test can read. */
function capturingLogger(): { logger: winston.Logger; lines: Array<{ level: string; message: string }> } {
  const lines: Array<{ level: string; message: string }> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as { level: string; message: string });
      done();
    },
  });
  return {
    logger: winston.createLogger({
      level: 'debug',
      format: winston.format.json(),
      transports: [new winston.transports.Stream({ stream })],
    }),
    lines,
  };
}

describe('releaseDeadNodeLeases (pure)', () => {
  const base = registerNode(registerNode(emptyConfiguration, { uuid: A, host: 'host-a' }), { uuid: B, host: 'host-b' });
  const withLeases = [
    { dataset_id: D1, node_uuid: A, expires: null },
    { dataset_id: D2, node_uuid: A, expires: null, pinned: true },
    { dataset_id: D3, node_uuid: B, expires: null },
  ].reduce((c, req) => acquireLease(c, req, T0).config, base);

  it('releases the unpinned leases of nodes dead for at least the grace, nothing else', () => {
    const deadSince = (uuid: string): number | undefined => (uuid === A ? T0 : undefined);
    const early = releaseDeadNodeLeases(withLeases, deadSince, T0 + G - 1, G);
    expect(early.config).toBe(withLeases);
    expect(early.result).toEqual([]);
    const due = releaseDeadNodeLeases(withLeases, deadSince, T0 + G, G);
    expect(due.config.version).toBe(withLeases.version + 1);
    expect([...due.config.leases.keys()]).toEqual([D2, D3]);
    expect(due.result).toEqual([{ lease: { dataset_id: D1, node_uuid: A, expires_at: null }, deadSince: T0 }]);
    // Applied again (another replica already released it): a no-op, not an error.
    const again = releaseDeadNodeLeases(due.config, deadSince, T0 + G + 1, G);
    expect(again.config).toBe(due.config);
    expect(again.result).toEqual([]);
  });

  it('a node alive again when the change is applied keeps its lease; an expired lease is left to expiry', () => {
    expect(releaseDeadNodeLeases(withLeases, () => undefined, T0 + 10 * G, G).config).toBe(withLeases);
    const expiring = acquireLease(withLeases, { dataset_id: D1, node_uuid: A, expires: 1 }, T0).config;
    expect(releaseDeadNodeLeases(expiring, (u) => (u === A ? T0 : undefined), T0 + 2_000, 0).config).toBe(expiring);
  });

  it('a grace of 0 releases as soon as the node is dead', () => {
    expect(
      releaseDeadNodeLeases(withLeases, (u) => (u === B ? T0 : undefined), T0, 0).result.map((r) => r.lease.dataset_id),
    ).toEqual([D3]);
  });
});

describe('pinned leases (configuration)', () => {
  const base = registerNode(emptyConfiguration, { uuid: A, host: 'host-a' });
  it('pinned is stored only when true, shown only when true, and kept by a renewal that does not mention it', () => {
    const plain = acquireLease(base, { dataset_id: D1, node_uuid: A, expires: null }, T0);
    expect(plain.result).toEqual({ dataset_id: D1, node_uuid: A, expires: null });
    expect(plain.config.leases.get(D1)).toEqual({ dataset_id: D1, node_uuid: A, expires_at: null });
    const pinned = acquireLease(plain.config, { dataset_id: D1, node_uuid: A, expires: null, pinned: true }, T0);
    expect(pinned.result).toEqual({ dataset_id: D1, node_uuid: A, expires: null, pinned: true });
    const renewed = acquireLease(pinned.config, { dataset_id: D1, node_uuid: A, expires: 60 }, T0);
    expect(renewed.result).toEqual({ dataset_id: D1, node_uuid: A, expires: 60, pinned: true });
    const unpinned = acquireLease(renewed.config, { dataset_id: D1, node_uuid: A, expires: null, pinned: false }, T0);
    expect(listLeases(unpinned.config, T0)).toEqual([{ dataset_id: D1, node_uuid: A, expires: null }]);
  });
});

describe('timing flags', () => {
  it('--node-timeout must be positive, --lease-grace zero or positive', () => {
    expect(checkTiming(30, 5)).toEqual({ nodeTimeoutMs: 30_000, leaseGraceMs: 5_000 });
    expect(checkTiming(0.5, 0)).toEqual({ nodeTimeoutMs: 500, leaseGraceMs: 0 });
    expect(() => checkTiming(0, 5)).toThrow(expect.objectContaining({ code: 'INVALID_NODE_TIMEOUT' }));
    expect(() => checkTiming(30, -1)).toThrow(expect.objectContaining({ code: 'INVALID_LEASE_GRACE' }));
    expect(() => checkTiming(30, Number.NaN)).toThrow(expect.objectContaining({ code: 'INVALID_LEASE_GRACE' }));
  });
});

describe('events', () => {
  it('the ring keeps the last 200, oldest first', () => {
    const ring = new EventRing();
    for (let i = 0; i < 250; i++)
      ring.push({ time: new Date(T0 + i).toISOString(), kind: 'node_dead', message: String(i) });
    const list = ring.list();
    expect(list).toHaveLength(200);
    expect(list[0]?.message).toBe('50');
    expect(list.at(-1)?.message).toBe('249');
  });
  it('durations read as a person would say them', () => {
    expect(deadFor(5_000)).toBe('5s');
    expect(deadFor(65_000)).toBe('1m 5s');
    expect(deadFor(2 * 3600_000 + 60_000)).toBe('2h 1m');
  });
});

describe('ControlState: leases of dead nodes (injected clock)', () => {
  let t = T0;
  const now = (): number => t;
  let state: ControlState;
  let dir: string;
  let log: ReturnType<typeof capturingLogger>;

  async function open(store: ConfigurationStore, leaseGraceMs = G): Promise<ControlState> {
    return ControlState.open({
      store,
      nodeTimeoutMs: T,
      leaseGraceMs,
      logger: log.logger,
      now,
      livenessCheckMs: 3_600_000,
    });
  }

  /** A and B report; D1 leased by A, D2 leased by A and pinned, D3 leased by B. */
  async function seed(s: ControlState): Promise<void> {
    await s.report(report(A));
    await s.report(report(B));
    for (const [id, primary] of [
      [D1, A],
      [D2, A],
      [D3, B],
    ] as const)
      await s.mutate((c) => createDataset(c, { primary, dataset_id: id, metadata: { name: `vol-${id.slice(0, 1)}` } }));
    await s.mutate((c, n) => acquireLease(c, { dataset_id: D1, node_uuid: A, expires: null }, n));
    await s.mutate((c, n) => acquireLease(c, { dataset_id: D2, node_uuid: A, expires: null, pinned: true }, n));
    await s.mutate((c, n) => acquireLease(c, { dataset_id: D3, node_uuid: B, expires: null }, n));
  }

  /** Moves the clock; B keeps reporting, A does not. */
  async function advanceTo(ms: number): Promise<void> {
    t = ms;
    await state.report(report(B));
    await state.checkLiveness();
  }

  const leased = (): string[] => [...state.configuration.leases.keys()];

  beforeEach(async () => {
    t = T0;
    log = capturingLogger();
    dir = mkdtempSync(path.join(tmpdir(), 'flocker-failover-'));
    state = await open(new FileConfigurationStore(dir));
    await seed(state);
  });
  afterEach(async () => {
    await state.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps the lease of a node dead for less than the grace; at the grace releases it (committed, event, long-polls woken)', async () => {
    const deadSince = T0 + T;
    await advanceTo(deadSince + 1);
    expect(state.listEvents().map((e) => e.kind)).toEqual(['node_dead']);
    expect(state.listEvents()[0]).toMatchObject({ node_uuid: A, message: expect.stringContaining('host-a') });
    await advanceTo(deadSince + G - 1);
    expect(leased()).toEqual([D1, D2, D3]);

    const version = state.configuration.version;
    const since = state.generation;
    const woke = state.waitForChange(since, 60_000);
    await advanceTo(deadSince + G);
    await woke;
    expect(state.generation).not.toBe(since);
    // The pinned lease (D2) and the live node's lease (D3) stay.
    expect(leased()).toEqual([D2, D3]);
    expect(state.configuration.version).toBe(version + 1);
    const events = state.listEvents();
    expect(events.map((e) => ClusterEvent.parse(e).kind)).toEqual(['node_dead', 'lease_released_dead_node']);
    expect(events[1]).toMatchObject({
      kind: 'lease_released_dead_node',
      dataset_id: D1,
      node_uuid: A,
      time: new Date(deadSince + G).toISOString(),
      message: `Lease on volume vol-1 (dataset ${D1}) released: host host-a (node ${A}) dead for 5s, since ${new Date(deadSince).toISOString()}.`,
    });
    expect(log.lines.filter((l) => l.level === 'warn').map((l) => l.message)).toEqual([
      events[0]?.message,
      events[1]?.message,
    ]);
    // Nothing more to do: later checks commit nothing.
    await advanceTo(deadSince + 3 * G);
    expect(state.configuration.version).toBe(version + 1);
    expect(state.listEvents()).toHaveLength(2);
  });

  it('the release is durable: a restarted control service (file store replay) has it, and the pinned lease still pinned', async () => {
    await advanceTo(T0 + T + G);
    expect(leased()).toEqual([D2, D3]);
    await state.close();
    state = await open(new FileConfigurationStore(dir));
    expect(leased()).toEqual([D2, D3]);
    expect(listLeases(state.configuration, t).find((l) => l.dataset_id === D2)).toEqual({
      dataset_id: D2,
      node_uuid: A,
      expires: null,
      pinned: true,
    });
  });

  it('a node back before the grace ends keeps its lease; back after it, finds the lease gone', async () => {
    await advanceTo(T0 + T + 1);
    t = T0 + T + G - 1_000;
    await state.report(report(A));
    expect(state.listEvents().map((e) => e.kind)).toEqual(['node_dead', 'node_back']);
    await advanceTo(T0 + T + G + 1);
    expect(leased()).toEqual([D1, D2, D3]);

    // A dies again (last report at T0 + T + G - 1000) and stays dead for the grace.
    const deadSince = T0 + T + G - 1_000 + T;
    await advanceTo(deadSince + G);
    expect(leased()).toEqual([D2, D3]);
    t += 1_000;
    await state.report(report(A));
    expect(state.listEvents().map((e) => e.kind)).toEqual([
      'node_dead',
      'node_back',
      'node_dead',
      'lease_released_dead_node',
      'node_back',
    ]);
    expect(state.listEvents().at(-1)?.message).toMatch(/^Node host-a .* reports again after 6s dead/);
    expect(leased()).toEqual([D2, D3]);
  });

  it('with a grace of 0 the lease goes at the first check after the node is declared dead', async () => {
    await state.close();
    state = await open(new FileConfigurationStore(dir), 0);
    t = T0 + 1;
    await state.report(report(A));
    await advanceTo(T0 + 1 + T + 1);
    expect(leased()).toEqual([D2, D3]);
  });

  it('after a restart, a known lease holder that never reports again is dead from start + T and loses its lease at start + T + G', async () => {
    await state.close();
    t = T0 + 100_000;
    const started = t;
    state = await open(new FileConfigurationStore(dir));
    await advanceTo(started + T - 1);
    expect(state.listEvents()).toEqual([]);
    await advanceTo(started + T + 1);
    expect(state.listEvents()).toMatchObject([
      {
        kind: 'node_dead',
        node_uuid: A,
        message: expect.stringContaining('not reported since the control service started'),
      },
    ]);
    await advanceTo(started + T + G);
    expect(leased()).toEqual([D2, D3]);
  });

  it('a failed commit is logged, not thrown, and retried at the next check', async () => {
    await state.close();
    let failures = 0;
    const memory = new MemoryConfigurationStore();
    const flaky: ConfigurationStore = {
      load: () => memory.load(),
      commit: async (c) => {
        if (failures > 0) {
          failures -= 1;
          throw new Error('disk on fire');
        }
        await memory.commit(c);
      },
    };
    state = await open(flaky);
    await seed(state);
    failures = 1;
    await advanceTo(T0 + T + G);
    expect(leased()).toEqual([D1, D2, D3]);
    expect(
      log.lines.some((l) => l.level === 'warn' && /releasing the leases of dead nodes failed/.test(l.message)),
    ).toBe(true);
    await advanceTo(T0 + T + G + 1_000);
    expect(leased()).toEqual([D2, D3]);
  });
});
