/**
 * Review T2 (session 18): `flocker containers list` says a container is "running" on a node that
 * is dead. Reproduced on `./dev cluster up 3` with container agents: flocker-deploy an application
 * onto c, then `./dev cluster poweroff c`; once the control service has declared c dead (the node
 * list says so), `flocker containers list` still shows it `running` on 10.77.0.13: the dead node's
 * last container report. A container whose node is not alive is not known to run.
 */
import { A, B, node } from '@flocker/web-ui/testing';
import { containerText, containerViews } from './containers';
import { containerConfig } from './testing/containers';

const writer = containerConfig('writer', A, 'tiny');

describe('containerViews on a dead node', () => {
  it('does not report the container running', () => {
    const nodes = [node(A, '10.77.0.13', { alive: false }), node(B, '10.77.0.11')];
    const [view] = containerViews(
      [writer],
      [{ name: 'writer', node_uuid: A, image: 'tiny', running: true }],
      nodes,
      [],
    );
    expect(view?.node).toBe('10.77.0.13');
    expect(view?.state).not.toBe('running');
    // What is known: the node is dead, and what it said last.
    expect(view?.state).toBe('unknown');
    expect(containerText(view!)).toMatch(/State: +unknown \(its node is dead; last reported running\)/);
  });
  it('a container no longer configured, reported by a dead node: unknown too, not removing', () => {
    const nodes = [node(A, '10.77.0.13', { alive: false })];
    const [view] = containerViews([], [{ name: 'old', node_uuid: A, image: 'tiny', running: false }], nodes, []);
    expect(view).toMatchObject({ state: 'unknown', last_reported: 'stopped' });
  });
  it('on a live node the report is the state, with nothing last-reported', () => {
    const [view] = containerViews(
      [writer],
      [{ name: 'writer', node_uuid: A, image: 'tiny', running: true }],
      [node(A, '10.77.0.13')],
      [],
    );
    expect(view).toMatchObject({ state: 'running', last_reported: null });
    expect(containerText(view!)).toMatch(/State: +running\n/);
  });
});
