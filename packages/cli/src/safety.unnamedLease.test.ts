/**
 * s23 USER-T F1: `flocker leases acquire pgdata`, then `flocker leases release pgdata` (or `volumes destroy`), with no
 * container anywhere, was refused with "that live node holds its lease, so a container there uses it … Stop the
 * container first": the CLI's own lease, which names no holder, was described as a container's.
 */
import { checkInUse } from './safety';
import { A, node as nodeA } from './testing/snapshots';

const D = '11111111-1111-4111-8111-111111111111';
const node = nodeA();
const unnamed = { lease: { dataset_id: D, node_uuid: A, expires: null }, node };
const docker = { lease: { dataset_id: D, node_uuid: A, expires: null, holders: ['docker'] }, node };

describe('a lease that names no holder (flocker leases acquire, a Flocker v1 client)', () => {
  it.each(['release', 'destroy'] as const)(
    '%s: refused, saying who takes such leases, not that a container uses it',
    (action) => {
      const refuse = () => checkInUse(action, 'pgdata', unnamed, false);
      expect(refuse).toThrow(
        /holds a lease that names no holder \(taken by "flocker leases acquire" or a Flocker v1 API client\)/,
      );
      expect(refuse).not.toThrow(/container/);
      expect(refuse).toThrow(/If you took it yourself, pass --force/);
    },
  );

  it('forced release: the warning does not speak of a container either', () => {
    expect(checkInUse('release', 'pgdata', unnamed, true)).not.toMatch(/container/);
  });

  it('a lease the Docker plugin holds (holder docker) still says a container there uses it', () => {
    expect(() => checkInUse('release', 'pgdata', docker, false)).toThrow(/so a container there uses it/);
  });
});
