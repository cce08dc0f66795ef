import { A, B, D1, dataset, node } from '@flocker/web-ui/testing';
import type { ContainerConfiguration } from '@flocker/api';
import { containerErrorText, containerText, containerViews } from './containers';

const web = (over: Partial<ContainerConfiguration> = {}): ContainerConfiguration => ({
  name: 'web',
  node_uuid: A,
  image: 'nginx',
  ports: [{ internal: 80, external: 8080 }],
  environment: { SECRET: 'hunter2' },
  links: [],
  volumes: [{ dataset_id: D1, mountpoint: '/data' }],
  restart_policy: { name: 'always' },
  ...over,
});
const nodes = [node(A, '10.0.0.1'), node(B, '10.0.0.2')];
const missing = { code: 'IMAGE_NOT_FOUND' as const, message: 'No such image: nginx', attempts: 3, since: 't0' };

describe('containerViews', () => {
  it('running on its node, with host and volume name', () => {
    const [v] = containerViews([web()], [{ name: 'web', node_uuid: A, image: 'nginx', running: true }], nodes, [
      dataset(D1, 'pgdata', A),
    ]);
    expect(v).toMatchObject({ name: 'web', node: '10.0.0.1', state: 'running', volume: 'pgdata', error: null });
  });
  it("failing with the agent's error; pending before any report", () => {
    const failing = containerViews(
      [web()],
      [{ name: 'web', node_uuid: A, image: 'nginx', running: false, error: missing }],
      nodes,
      [],
    );
    expect(failing[0]).toMatchObject({ state: 'failing', error: missing, volume: D1 });
    expect(containerViews([web()], [], nodes, [])[0]?.state).toBe('pending');
  });
  it('moving: reported on another node; removing: reported but no longer configured', () => {
    const rows = containerViews(
      [web({ node_uuid: B })],
      [
        { name: 'web', node_uuid: A, image: 'nginx', running: true },
        { name: 'old', node_uuid: A, image: 'redis', running: false },
      ],
      nodes,
      [],
    );
    expect(rows.map((r) => [r.name, r.node, r.state, r.reported_node])).toEqual([
      ['old', '10.0.0.1', 'removing', null],
      ['web', '10.0.0.2', 'running', '10.0.0.1'],
    ]);
  });
  it('text names the error and environment keys, never values', () => {
    const [v] = containerViews(
      [web()],
      [{ name: 'web', node_uuid: A, image: 'nginx', running: false, error: missing }],
      nodes,
      [],
    );
    const text = containerText(v!);
    expect(text).toMatch(/Error: +IMAGE_NOT_FOUND: No such image: nginx \(3 attempts since t0\)/);
    expect(text).toMatch(/Ports: +8080->80/);
    expect(text).toMatch(/Env: +SECRET/);
    expect(text).not.toMatch(/hunter2/);
    expect(containerErrorText({ ...missing, attempts: 1 })).toMatch(/1 attempt since/);
  });
});
