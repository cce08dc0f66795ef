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
