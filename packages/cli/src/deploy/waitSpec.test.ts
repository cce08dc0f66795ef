/**
 * Review T2 (session 18): `flocker-deploy --wait` reports success for a changed application that
 * cannot run. Reproduced on `./dev cluster up 3` with container agents: deploy an application with
 * `image: tiny` and --wait (running); change its image to one the node lacks (`image: nosuchimage`)
 * and deploy again with --wait on the same node: it prints "deployed: every container is running on
 * its node" and exits 0 at once (3 of 3 tries), because the old container (image tiny) is still
 * reported running on that node; a moment later `flocker containers list` says `failing
 * IMAGE_NOT_FOUND`. The same holds for any change that recreates the container (command, ports,
 * environment …). --wait should count only a container that runs the deployed configuration.
 */
import { containerConfigId } from '@flocker/api';
import { notYetRunning, whyNotRunning } from './command';

const A = '8fee52ac-a1c5-4dc3-8daa-973bb67fe63b';

const configured = [
  {
    name: 'writer',
    node_uuid: A,
    image: 'nosuchimage',
    ports: [],
    environment: {},
    links: [],
    volumes: [],
    restart_policy: { name: 'never' as const },
  },
];

describe('notYetRunning after a change of the application on the same node', () => {
  test('the old container still running with the old image does not count', () => {
    expect(notYetRunning(configured, [{ name: 'writer', node_uuid: A, image: 'tiny', running: true }])).toEqual([
      'writer',
    ]);
  });
  test('the new image running there counts', () => {
    expect(notYetRunning(configured, [{ name: 'writer', node_uuid: A, image: 'nosuchimage', running: true }])).toEqual(
      [],
    );
  });
  test('why it still waits, as far as the reports tell', () => {
    const [c] = configured;
    expect(whyNotRunning(c!, [{ name: 'writer', node_uuid: A, image: 'tiny', running: true }])).toBe(
      'its node still runs the previous image tiny',
    );
    expect(whyNotRunning(c!, [{ name: 'writer', node_uuid: A, image: 'nosuchimage', running: false }])).toBe(
      'reported stopped on its node',
    );
    expect(whyNotRunning(c!, [])).toMatch(/not reported by its node \(is its container agent running\?\)/);
  });
});

describe('notYetRunning: the configuration the container runs (review T2 F4, the rest)', () => {
  const [c] = configured;
  const mine = containerConfigId(c!);
  const previous = containerConfigId({ ...c!, command_line: ['sleep', '1'] });
  test('a change of only the command: the old container (same image) reported with the old configuration does not count', () => {
    const s = { name: 'writer', node_uuid: A, image: 'nosuchimage', running: true, config: previous };
    expect(notYetRunning(configured, [s])).toEqual(['writer']);
    expect(whyNotRunning(c!, [s])).toBe('its node still runs the previous configuration of writer');
  });
  test('the configured one running counts', () => {
    expect(
      notYetRunning(configured, [{ name: 'writer', node_uuid: A, image: 'nosuchimage', running: true, config: mine }]),
    ).toEqual([]);
  });
  test('a report without it (a container agent from before): the image decides, as before', () => {
    expect(notYetRunning(configured, [{ name: 'writer', node_uuid: A, image: 'nosuchimage', running: true }])).toEqual(
      [],
    );
  });
});

describe('whyNotRunning: a container agent that stopped reporting (review T2 F3, the rest)', () => {
  const [c] = configured;
  const now = Date.parse('2026-12-06T05:30:00.000Z');
  const nodes = [{ uuid: A, host: '10.77.0.11', alive: true }];
  test('its report is older than the bound: says since when', () => {
    const since = new Date(now - 25_000).toISOString();
    const s = { name: 'writer', node_uuid: A, image: 'tiny', running: true, reported_at: since };
    expect(whyNotRunning(c!, [s], nodes, now)).toBe(
      `no report from the container agent on host 10.77.0.11 since ${since}: is it running?`,
    );
  });
  test('not reported on its live node at all', () => {
    expect(whyNotRunning(c!, [], nodes, now)).toBe(
      'no report from the container agent on host 10.77.0.11: is it running?',
    );
  });
  test('still reported on the old node only, whose container agent went silent: both said', () => {
    const B = '9fee52ac-a1c5-4dc3-8daa-973bb67fe63b';
    const since = new Date(now - 40_000).toISOString();
    const both = [...nodes, { uuid: B, host: '10.77.0.12', alive: true }];
    const onB = { name: 'writer', node_uuid: B, image: 'tiny', running: true, reported_at: since };
    expect(whyNotRunning(c!, [onB], both, now)).toBe(
      `still reported on another node only; no report from the container agent on host 10.77.0.12 since ${since}: is it running?`,
    );
  });
});
