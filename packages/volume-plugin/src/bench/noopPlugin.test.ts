import * as fs from 'node:fs';
import type * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { callPlugin } from '../testing/callPlugin';
import { renderMarkdown, summarise } from './bench';
import type { RatioEstimate } from './stats';
import { createNoopPluginServer, NoopVolumes, type NoopCallLine } from './noopPlugin';

describe('the no-op legacy plugin of the benchmark (Docker floor, issue 23)', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-noop-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('answers every VolumeDriver call from memory; Create makes the mountpoint directory, nothing else writes', () => {
    const v = new NoopVolumes(dir);
    expect(v.call('/Plugin.Activate', {})).toEqual({ Implements: ['VolumeDriver'] });
    expect(v.call('/VolumeDriver.Capabilities', {})).toEqual({ Capabilities: { Scope: 'local' }, Err: '' });
    expect(v.call('/VolumeDriver.Get', { Name: 'a' })).toEqual({ Err: 'no such volume' });
    expect(v.call('/VolumeDriver.Create', { Name: 'a' })).toEqual({ Err: '' });
    const mountpoint = path.join(dir, 'a');
    expect(fs.statSync(mountpoint).isDirectory()).toBe(true);
    expect(v.call('/VolumeDriver.Get', { Name: 'a' })).toEqual({
      Volume: { Name: 'a', Mountpoint: mountpoint },
      Err: '',
    });
    expect(v.call('/VolumeDriver.Path', { Name: 'a' })).toEqual({ Mountpoint: mountpoint, Err: '' });
    expect(v.call('/VolumeDriver.Mount', { Name: 'a', ID: 'x' })).toEqual({
      Mountpoint: mountpoint,
      Err: '',
    });
    expect(v.call('/VolumeDriver.Unmount', { Name: 'a' })).toEqual({ Err: '' });
    expect(v.call('/VolumeDriver.List', {})).toEqual({ Volumes: [{ Name: 'a' }], Err: '' });
    expect(v.call('/VolumeDriver.Remove', { Name: 'a' })).toEqual({ Err: '' });
    expect(v.call('/VolumeDriver.Get', { Name: 'a' })).toEqual({ Err: 'no such volume' });
    expect(v.call('/VolumeDriver.Mount', { Name: 'a' })).toEqual({ Err: 'no such volume' });
    expect(v.call('/VolumeDriver.Create', {})).toEqual({ Err: 'no name' });
    // A name is one path component, whatever it holds.
    v.call('/VolumeDriver.Create', { Name: '../x' });
    expect(fs.readdirSync(dir).sort()).toEqual(['..%2Fx', 'a']);
  });

  it('serves the calls over a Unix socket as Docker sends them', async () => {
    const socket = path.join(dir, 'noop.sock');
    const server: http.Server = createNoopPluginServer(path.join(dir, 'volumes'));
    fs.mkdirSync(path.join(dir, 'volumes'));
    await new Promise<void>((r) => server.listen(socket, r));
    try {
      expect((await callPlugin(socket, '/Plugin.Activate')).body).toEqual({ Implements: ['VolumeDriver'] });
      expect((await callPlugin(socket, '/VolumeDriver.Create', { Name: 'v', Opts: null })).body).toEqual({ Err: '' });
      const mounted = await callPlugin(socket, '/VolumeDriver.Mount', { Name: 'v', ID: 'abc' });
      expect(mounted.status).toBe(200);
      expect(mounted.body).toEqual({ Mountpoint: path.join(dir, 'volumes', 'v'), Err: '' });
      expect((await callPlugin(socket, '/VolumeDriver.Get', 'not json')).body).toEqual({ Err: 'no such volume' });
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it("with a log, each answered call is a line of the Flocker plugin's `plugin call` shape (trace-docker-run)", async () => {
    const socket = path.join(dir, 'noop.sock');
    const lines: NoopCallLine[] = [];
    const server = createNoopPluginServer(path.join(dir, 'volumes'), (l) => lines.push(l));
    fs.mkdirSync(path.join(dir, 'volumes'));
    await new Promise<void>((r) => server.listen(socket, r));
    const before = Date.now();
    try {
      await callPlugin(socket, '/VolumeDriver.Create', { Name: 'v', Opts: null });
      await callPlugin(socket, '/VolumeDriver.Remove', { Name: 'v' });
      await callPlugin(socket, '/VolumeDriver.List', {});
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
    expect(lines.map((l) => [l.message, l.call, l.request])).toEqual([
      ['plugin call', '/VolumeDriver.Create', { Name: 'v' }],
      ['plugin call', '/VolumeDriver.Remove', { Name: 'v' }],
      ['plugin call', '/VolumeDriver.List', {}],
    ]);
    for (const l of lines) {
      expect(l.duration_ms).toBeGreaterThanOrEqual(0);
      // Wall clock in ms, as the plugin's and the agent's `t`.
      expect(Number(l.t)).toBeGreaterThanOrEqual(before - 1);
      expect(Number(l.t)).toBeLessThanOrEqual(Date.now() + 1);
    }
  });

  it('the report labels the floor rows and their ratios, and leaves the target rows as they were', () => {
    const s = summarise([1, 2, 3]);
    const at = (ratio: number): RatioEstimate => ({
      rounds: 20,
      ratio,
      ci: [ratio - 0.1, ratio + 0.1],
      paired: ratio,
      paired_ci: [ratio - 0.05, ratio + 0.05],
      median_of_ratios: ratio,
    });
    const md = renderMarkdown(
      { local_rm: s, noop_rm: s },
      { flocker_rm_vs_local_rm: at(1.5), noop_rm_vs_local_rm: at(1.1), flocker_rm_vs_noop_rm: at(1.4) },
      { flocker_rm_vs_local_rm: 1.3 },
      { runs: 20, infoRuns: 20 },
    );
    expect(md).toContain('20 interleaved rounds, each running every scenario once (ms).\n');
    expect(md).toContain('| floor: `docker volume rm` (of the volume just created), no-op legacy plugin | 3 | 2 |');
    expect(md).toContain('| flocker_rm_vs_local_rm | 1.500 [1.400, 1.600] | ≤ 1.3 | **missed** |');
    expect(md).toContain(
      "| noop_rm_vs_local_rm (floor: Docker's legacy plugin mechanism alone) | 1.100 [1.000, 1.200] | — |",
    );
    expect(md).toContain('| flocker_rm_vs_noop_rm (what Flocker adds above the floor) | 1.400 [1.300, 1.500] | — |');
  });
});
