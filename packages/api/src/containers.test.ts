import { ContainerReport, ContainerState, parseApplicationFile, unknownKeyMessage } from './containers';

const flocker = (app: Record<string, unknown>) => ({ version: 1, applications: { web: { image: 'nginx', ...app } } });
const compose = (svc: Record<string, unknown>) => ({ services: { web: { image: 'nginx', ...svc } } });

function issues(doc: unknown): string[] {
  const r = parseApplicationFile(doc);
  return r.ok ? [] : r.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

describe('unknown keys name the key that was meant (issue 21)', () => {
  test.each<[string, unknown, RegExp]>([
    [
      'Flocker format: command',
      flocker({ command: ['sh'] }),
      /^applications\.web\.command: unknown key "command": the key is command_line/,
    ],
    ['Flocker format: volumes', flocker({ volumes: ['/data'] }), /the key is volume, one per application/],
    ['Flocker format: restart', flocker({ restart: 'always' }), /the key is restart_policy/],
    ['Flocker format: entrypoint', flocker({ entrypoint: 'x' }), /put the whole command in command_line/],
    ['Compose: command_line', compose({ command_line: ['sh'] }), /^services\.web\.command_line: .*the key is command$/],
    ['Compose: volume', compose({ volume: { mountpoint: '/d' } }), /the key is volumes: \["name:\/path"\]/],
    ['Compose: restart_policy', compose({ restart_policy: { name: 'always' } }), /the key is restart:/],
    ['Compose: an unsupported key lists the supported ones', compose({ build: '.' }), /takes only image, ports, /],
  ])('%s', (_what, doc, expected) => {
    expect(issues(doc)).toEqual([expect.stringMatching(expected)]);
  });

  test('each unknown key is its own issue, at the key; deeper unknown keys say only that', () => {
    expect(issues(flocker({ command: 'x', mem: 1 }))).toEqual([
      expect.stringMatching(/^applications\.web\.command: /),
      expect.stringMatching(/^applications\.web\.mem: unknown key "mem": the key is mem_limit/),
    ]);
    expect(issues(flocker({ volume: { mountpoint: '/d', size: 1 } }))).toEqual([
      'applications.web.volume.size: unknown key "size"',
    ]);
    expect(unknownKeyMessage('flocker', 'zzz')).toMatch(/takes only image, ports, .*command_line/);
  });
});

describe("Compose volumes: /path and Compose's name:/path (issue 21)", () => {
  test.each<[string, unknown]>([
    ['/var/lib/postgresql', { mountpoint: '/var/lib/postgresql' }],
    ['pgdata:/var/lib/postgresql', { name: 'pgdata', mountpoint: '/var/lib/postgresql' }],
    ['pg.data_1:/data:rw', { name: 'pg.data_1', mountpoint: '/data' }],
  ])('%s', (spec, volume) => {
    const r = parseApplicationFile(compose({ volumes: [spec] }));
    expect(r.ok && r.value['web']?.volume).toEqual(volume);
  });

  test.each<[string, RegExp]>([
    ['data', /must be a container path \(\/data\) or name:\/path/],
    ['./data:/data', /mounts a host path, which does not move with the container/],
    ['/srv/data:/data', /mounts a host path/],
    ['pgdata:/data:ro', /mounted read-write \(drop ":ro"\)/],
    ['pgdata:/data:z', /the mode "z" is not supported/],
    ['pgdata:data', /the container path "data" must be absolute/],
    ['-x:/data', /is not a valid volume name/],
    ['a:b:c:d', /must be name:\/path or \/path/],
  ])('%s is refused', (spec, expected) => {
    expect(issues(compose({ volumes: [spec] }))).toEqual([expect.stringMatching(expected)]);
  });
});

describe('container state carries the agent error (issue 21)', () => {
  const error = { code: 'IMAGE_NOT_FOUND', message: 'No such image: x', attempts: 1, since: '2026-01-01T00:00:00Z' };
  test('with and without an error; unknown codes refused', () => {
    const state = { name: 'web', node_uuid: '3f9a0c4e-1b2d-4c5e-8f70-9a1b2c3d4e5f', image: 'x', running: false };
    expect(ContainerState.parse({ ...state, error })).toEqual({ ...state, error });
    expect(ContainerState.parse(state)).toEqual(state);
    expect(ContainerState.safeParse({ ...state, error: { ...error, code: 'OOPS' } }).success).toBe(false);
    expect(ContainerReport.parse({ containers: [{ name: 'web', image: 'x', running: false, error }] })).toBeDefined();
  });
});
