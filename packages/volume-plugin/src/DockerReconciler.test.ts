import * as winston from 'winston';
import { containersUsing, decideVolume, DockerReconciler, driverNameOf, type ReconcileTarget, type Timers, type VolumeOutcome } from './DockerReconciler';
import type { DockerContainer } from './DockerView';
import { FakeDocker } from './FakeDocker';

const logger = winston.createLogger({ silent: true, transports: [new winston.transports.Console()] });
const NOW = 1_800_000_000_000;
const WINDOW = 60_000;

function ctr(id: string, state: string, mounts: DockerContainer['mounts'], createdMs = NOW - 3_600_000): DockerContainer {
  return { id, state, createdMs, mounts };
}
const vol = (name: string, driver = 'flocker', source = `/flocker/${name}`) => ({ type: 'volume', name, driver, source });

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
    expect(containersUsing(v, list, 'flocker', NOW, WINDOW).map((c) => c.id)).toEqual(['run', 'pause', 'restart']);
  });

  it('a mount of the volume’s mountpoint counts whatever its driver name says (an alias, a bind mount)', () => {
    const list = [ctr('alias', 'running', [vol('pg', 'flocker-alias', '/flocker/pg')]), ctr('bind', 'running', [{ type: 'bind', source: '/flocker/pg' }])];
    expect(containersUsing(v, list, 'flocker', NOW, WINDOW).map((c) => c.id)).toEqual(['alias', 'bind']);
    expect(containersUsing({ name: 'pg' }, list, 'flocker', NOW, WINDOW)).toEqual([]);
  });

  it('a "created" container uses it only within the safety window (Docker mounts before starting)', () => {
    const list = [ctr('new', 'created', [vol('pg', 'flocker', '')], NOW - 5_000), ctr('old', 'created', [vol('pg')], NOW - WINDOW - 1)];
    expect(containersUsing(v, list, 'flocker', NOW, WINDOW).map((c) => c.id)).toEqual(['new']);
  });

  it('decides: keep while used or while a mount ID is young; else release every ID', () => {
    const old = new Map([['a', NOW - WINDOW - 1], ['b', NOW - 2 * WINDOW]]);
    expect(decideVolume(old, [ctr('run', 'running', [])], NOW, WINDOW)).toEqual({ action: 'keep', reason: 'in use', containers: ['run'] });
    expect(decideVolume(new Map([...old, ['c', NOW - 10]]), [], NOW, WINDOW)).toEqual({ action: 'keep', reason: 'young mount', youngIds: ['c'] });
    expect(decideVolume(old, [], NOW, WINDOW)).toEqual({ action: 'release', staleIds: ['a', 'b'] });
    expect(decideVolume(new Map(), [], NOW, WINDOW)).toEqual({ action: 'release', staleIds: [] });
  });

  it('the driver name is the plugin socket’s basename', () => {
    expect(driverNameOf('/run/docker/plugins/flocker.sock')).toBe('flocker');
    expect(driverNameOf('/run/docker/plugins/flocker-e2e-12.sock')).toBe('flocker-e2e-12');
  });
});

describe('DockerReconciler scheduling', () => {
  class RecordingTarget implements ReconcileTarget {
    readonly seen: number[] = [];
    async reconcileWithDocker(containers: readonly DockerContainer[]): Promise<VolumeOutcome[]> {
      this.seen.push(containers.length);
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
    docker.up([ctr('a', 'running', [])]);
    await r.run('settle');
    expect(target.seen.length).toBeGreaterThanOrEqual(1);
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
