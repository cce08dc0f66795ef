import * as winston from 'winston';
import {
  containersUsing,
  decideInSight,
  decideVolume,
  DockerReconciler,
  driverNameOf,
  type FinishedAt,
  ourDriverNames,
  sightOf,
  type ReconcileTarget,
  type Timers,
  type VolumeOutcome,
} from './DockerReconciler';
import type { DockerContainer, DockerView, DockerVolume } from './DockerView';
import { FakeDocker } from './testing/FakeDocker';

const logger = winston.createLogger({ silent: true, transports: [new winston.transports.Console()] });
const NOW = 1_800_000_000_000;
const WINDOW = 60_000;

function ctr(
  id: string,
  state: string,
  mounts: DockerContainer['mounts'],
  createdMs = NOW - 3_600_000,
): DockerContainer {
  return { id, state, createdMs, mounts };
}
const FLOCKER: ReadonlySet<string> = new Set(['flocker']);
const vol = (name: string, driver = 'flocker', source = `/flocker/${name}`) => ({
  type: 'volume',
  name,
  driver,
  source,
});

describe('which containers use a volume', () => {
  const v = { name: 'pg', mountpoint: '/flocker/pg' };

  it('running, paused and restarting containers with the volume (driver and name) use it; stopped ones do not', () => {
    const list = [
      ctr('run', 'running', [vol('pg')]),
      ctr('pause', 'paused', [vol('pg')]),
      ctr('restart', 'restarting', [vol('pg')]),
      ctr('exit', 'exited', [vol('pg')]),
      ctr('dead', 'dead', [vol('pg')]),
      ctr('rm', 'removing', [vol('pg')]),
      ctr('other', 'running', [vol('other')]),
      ctr('local', 'running', [vol('pg', 'local', '/var/lib/docker/volumes/pg/_data')]),
    ];
    expect(containersUsing(v, list, FLOCKER, NOW, WINDOW).map((c) => c.id)).toEqual(['run', 'pause', 'restart']);
  });

  it('a mount of the volume’s mountpoint counts whatever its driver name says (an alias, a bind mount)', () => {
    const list = [
      ctr('alias', 'running', [vol('pg', 'flocker-alias', '/flocker/pg')]),
      ctr('bind', 'running', [{ type: 'bind', source: '/flocker/pg' }]),
    ];
    expect(containersUsing(v, list, FLOCKER, NOW, WINDOW).map((c) => c.id)).toEqual(['alias', 'bind']);
    expect(containersUsing({ name: 'pg' }, list, FLOCKER, NOW, WINDOW)).toEqual([]);
  });

  it('a "created" container uses it only within the safety window (Docker mounts before starting)', () => {
    const list = [
      ctr('new', 'created', [vol('pg', 'flocker', '')], NOW - 5_000),
      ctr('old', 'created', [vol('pg')], NOW - WINDOW - 1),
    ];
    expect(containersUsing(v, list, FLOCKER, NOW, WINDOW).map((c) => c.id)).toEqual(['new']);
  });

  it('decides: keep while used or while a mount ID is young; else release every ID', () => {
    const old = new Map([
      ['a', NOW - WINDOW - 1],
      ['b', NOW - 2 * WINDOW],
    ]);
    expect(decideVolume(old, [ctr('run', 'running', [])], NOW, WINDOW)).toEqual({
      action: 'keep',
      reason: 'in use',
      containers: ['run'],
    });
    expect(decideVolume(new Map([...old, ['c', NOW - 10]]), [], NOW, WINDOW)).toEqual({
      action: 'keep',
      reason: 'young mount',
      youngIds: ['c'],
    });
    expect(decideVolume(old, [], NOW, WINDOW)).toEqual({ action: 'release', staleIds: ['a', 'b'] });
    expect(decideVolume(new Map(), [], NOW, WINDOW)).toEqual({ action: 'release', staleIds: [] });
  });

  it('the driver name is the plugin socket’s basename', () => {
    expect(driverNameOf('/run/docker/plugins/flocker.sock')).toBe('flocker');
    expect(driverNameOf('/run/docker/plugins/flocker-e2e-12.sock')).toBe('flocker-e2e-12');
  });
});

describe('the driver names Docker uses for this plugin', () => {
  const pg = { name: 'pg' };
  const web = (driver: string, state = 'running', name = 'pg') => ctr('web', state, [vol(name, driver, '')]);

  it('are the configured name and every name Docker lists one of our volumes under (never "local")', () => {
    const listed: DockerVolume[] = [
      { name: 'pg', driver: 'flocker:latest' },
      { name: 'other', driver: 'someone-else' },
      { name: 'cache', driver: 'local' },
      { name: 'logs', driver: 'flocker' },
    ];
    expect([...ourDriverNames('plugin', ['pg', 'cache', 'logs'], listed)].sort()).toEqual([
      'flocker',
      'flocker:latest',
      'plugin',
    ]);
    expect([...ourDriverNames('plugin', [], listed)]).toEqual(['plugin']);
  });

  it('a container mount under a learned name is ours (the socket’s name is not Docker’s)', () => {
    const sight = sightOf([web('flocker')], [{ name: 'pg', driver: 'flocker' }], 'plugin', [pg]);
    expect(sight.blind).toBe(false);
    expect(decideInSight(new Map([['m1', NOW - 2 * WINDOW]]), pg, sight, NOW, WINDOW)).toEqual({
      action: 'keep',
      reason: 'in use',
      containers: ['web'],
    });
  });

  it('holding mount IDs with no container showing our volumes under our names: cannot tell, keep what some container mounts by name', () => {
    const old = new Map([['m1', NOW - 2 * WINDOW]]);
    const stray = { name: 'stray' };
    const sight = sightOf([web('flocker:latest')], [], 'plugin', [pg, stray]);
    expect(sight.blind).toBe(true);
    expect(decideInSight(old, pg, sight, NOW, WINDOW)).toEqual({
      action: 'keep',
      reason: 'cannot tell',
      containers: ['web'],
    });
    // An exited container listing the name is still "a container using a volume of that name".
    expect(
      decideInSight(old, pg, sightOf([web('flocker:latest', 'exited')], [], 'plugin', [pg]), NOW, WINDOW),
    ).toMatchObject({ reason: 'cannot tell' });
    // A volume no container mounts by name, under any driver, is decided as usual.
    expect(decideInSight(old, stray, sight, NOW, WINDOW)).toEqual({ action: 'release', staleIds: ['m1'] });
    // No container at all: released.
    expect(decideInSight(old, pg, sightOf([], [], 'plugin', [pg]), NOW, WINDOW)).toEqual({
      action: 'release',
      staleIds: ['m1'],
    });
  });

  it('a stopped container under a name Docker lists our volume under: seen, released', () => {
    const sight = sightOf([web('flocker', 'exited')], [{ name: 'pg', driver: 'flocker' }], 'plugin', [pg]);
    expect(sight.blind).toBe(false);
    expect(decideInSight(new Map([['m1', NOW - 2 * WINDOW]]), pg, sight, NOW, WINDOW)).toEqual({
      action: 'release',
      staleIds: ['m1'],
    });
  });

  it('nothing held: never blind', () => {
    expect(sightOf([web('flocker:latest')], [], 'plugin', []).blind).toBe(false);
  });
});

describe('DockerReconciler scheduling', () => {
  class RecordingTarget implements ReconcileTarget {
    readonly seen: number[] = [];
    readonly volumes: (readonly DockerVolume[] | undefined)[] = [];
    async reconcileWithDocker(
      containers: readonly DockerContainer[],
      _driver: string,
      volumes?: readonly DockerVolume[],
    ): Promise<VolumeOutcome[]> {
      this.seen.push(containers.length);
      this.volumes.push(volumes);
      return [];
    }
  }
  class ManualTimers implements Timers {
    fns: (() => void)[] = [];
    setInterval(fn: () => void): unknown {
      this.fns.push(fn);
      return fn;
    }
    clearInterval(h: unknown): void {
      this.fns = this.fns.filter((f) => f !== h);
    }
    tick(): void {
      for (const f of this.fns) f();
    }
  }

  it('reconciles at connection, at each reconnection (dockerd restart) and periodically; never while dockerd is away', async () => {
    const docker = new FakeDocker();
    docker.reachable = false;
    const target = new RecordingTarget();
    const timers = new ManualTimers();
    const r = new DockerReconciler({ docker, target, driver: 'flocker', logger, intervalMs: 30_000, timers });
    r.start();
    timers.tick(); // dockerd not up yet: nothing is decided
    expect(await r.run('test')).toBe(false);
    expect(target.seen).toEqual([]);
    docker.volumeList = [{ name: 'pg', driver: 'flocker:latest' }];
    docker.up([ctr('a', 'running', [])]);
    await r.run('settle');
    expect(target.seen.length).toBeGreaterThanOrEqual(1);
    expect(target.volumes.at(-1)).toEqual([{ name: 'pg', driver: 'flocker:latest' }]); // Docker's volume list is handed on
    const before = target.seen.length;
    docker.down();
    timers.tick();
    expect(await r.run('while away')).toBe(false);
    expect(target.seen.length).toBe(before);
    docker.up([]);
    await r.run('settle');
    expect(target.seen.at(-1)).toBe(0);
    timers.tick();
    await r.run('settle');
    await r.close();
    expect(timers.fns).toEqual([]);
    expect(await r.run('closed')).toBe(false);
  });

  it('hands the target the view’s finishedAt, called on the view, undefined when inspect fails; none without one', async () => {
    const docker = new FakeDocker();
    docker.finished.set('a', NOW);
    let got: FinishedAt | undefined;
    const target: ReconcileTarget = {
      reconcileWithDocker: async (_c, _d, _v, finishedAt) => {
        got = finishedAt;
        return [];
      },
    };
    const r = new DockerReconciler({ docker, target, driver: 'flocker', logger, intervalMs: 0 });
    expect(await r.run('test')).toBe(true);
    expect(await got?.('a')).toBe(NOW);
    expect(await got?.('gone')).toBeUndefined();
    docker.reachable = false; // inspect throws: the volume keeps its safety window
    expect(await got?.('a')).toBeUndefined();
    await r.close();
    docker.reachable = true;
    const withoutInspect: DockerView = {
      containers: () => docker.containers(),
      volumes: () => docker.volumes(),
      follow: (h) => docker.follow(h),
    };
    got = async () => 1;
    const plain = new DockerReconciler({ docker: withoutInspect, target, driver: 'flocker', logger, intervalMs: 0 });
    expect(await plain.run('test')).toBe(true);
    expect(got).toBeUndefined();
    await plain.close();
  });

  it('calls during a run share one follow-up run', async () => {
    const docker = new FakeDocker();
    let release: () => void = () => undefined;
    const target: ReconcileTarget = {
      reconcileWithDocker: () => new Promise<VolumeOutcome[]>((resolve) => (release = () => resolve([]))),
    };
    const r = new DockerReconciler({ docker, target, driver: 'flocker', logger, intervalMs: 0 });
    const first = r.run('one');
    await new Promise((res) => setImmediate(res));
    const second = r.run('two');
    const third = r.run('three');
    expect(second).toBe(third);
    release();
    await first;
    await new Promise((res) => setImmediate(res));
    release();
    await expect(second).resolves.toBe(true);
    expect(docker.lists).toBe(2);
  });
});
