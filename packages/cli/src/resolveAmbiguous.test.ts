/**
 * Review T6 (session 19), F0/F0d: which volume a name given to the CLI (destroy, move, snapshot, backup…) resolves to when the
 * reference is ambiguous. The control service does not keep dataset names unique: `flocker volumes create` checks
 * client-side (list, then create: two at once both pass), a Flocker v1 client or an API script sets any metadata
 * name, and the Docker plugin's create of "db" on another host races the CLI's (its id is name-based, the CLI's random).
 * Expected: an ambiguous reference is refused (EXIT.USAGE, "matches 2 volumes"), as an ambiguous id prefix already is.
 */
import type { DatasetConfiguration } from '@flocker/api';
import { resolveDataset, resolveNode } from './cli';
import { metadataArguments } from './validation';
import { EXIT } from './errors';

const ds = (id: string, name?: string): DatasetConfiguration => ({
  dataset_id: id,
  primary: 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa',
  metadata: name ? { name } : {},
  deleted: false,
  maximum_size: null,
});
const D1 = '11111111-1111-4111-8111-111111111111';
const D2 = '22222222-2222-4222-8222-222222222222';
const P = '3f9a0c4e-1b2d-4c5e-8f70-9a1b2c3d4e5f';

describe('ambiguous volume references in the CLI', () => {
  it('refuses a name two live volumes bear (destroy would pick the first silently)', () => {
    const two = [ds(D1, 'db'), ds(D2, 'db')];
    expect(() => resolveDataset(two, 'db')).toThrow(expect.objectContaining({ exitCode: EXIT.USAGE }));
    expect(() => resolveDataset(two, 'db')).toThrow(`"db" matches 2 volumes (ids ${D1}, ${D2}): give the id`);
    // The full id stays unambiguous, and a deleted namesake does not count.
    expect(resolveDataset(two, D2).dataset_id).toBe(D2);
    expect(resolveDataset([ds(D1, 'db'), { ...ds(D2, 'db'), deleted: true }], 'db').dataset_id).toBe(D1);
  });
  it('refuses a reference that is one volume’s name and another’s id prefix', () => {
    // Someone names a volume "3f9a" (valid volume name); `flocker volumes destroy 3f9a`, meant for 3f9a0c4e-…,
    // destroys the volume named "3f9a" instead.
    const shadow = [ds(P, 'prod-db'), ds(D1, '3f9a')];
    expect(() => resolveDataset(shadow, '3f9a')).toThrow(expect.objectContaining({ exitCode: EXIT.USAGE }));
    expect(() => resolveDataset(shadow, '3f9a')).toThrow(
      /matches 2 volumes \(ids 11111111-.*, 3f9a0c4e-.*\): give the id/,
    );
    expect(resolveDataset(shadow, P).dataset_id).toBe(P);
    expect(resolveDataset(shadow, '3f9a0').dataset_id).toBe(P);
  });
  it('lets no --metadata override the checked --name, and refuses __proto__ instead of dropping it', () => {
    // `volumes create --name db --metadata name=prod` created "prod", past the uniqueness check run on "db".
    expect(() => metadataArguments(['name=prod'], { name: 'db' })).toThrow(
      expect.objectContaining({ exitCode: EXIT.USAGE, message: expect.stringMatching(/the NAME argument \("db"\)/) }),
    );
    expect(() => metadataArguments(['__proto__=x'], { name: 'db' })).toThrow(
      expect.objectContaining({ exitCode: EXIT.USAGE, message: expect.stringMatching(/__proto__/) }),
    );
    expect(metadataArguments(['owner=x'], { name: 'db' })).toEqual({ name: 'db', owner: 'x' });
  });
});

describe('a host address two nodes report', () => {
  // A reprovisioned host keeps its IP under a new node UUID while the old node is still listed (dead), or a
  // compromised node reports another node's address (NodeReport.host is any string it chooses).
  const node = (uuid: string, host: string, alive: boolean) =>
    ({ uuid, host, alive, manifestations: [], errors: [] }) as unknown as import('@flocker/api').NodeState;
  it('`flocker volumes move db 10.0.0.1` refuses an address two nodes have (it moved to the first listed)', () => {
    const nodes = [
      node('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '10.0.0.1', false),
      node('cccccccc-cccc-4ccc-8ccc-cccccccccccc', '10.0.0.1', true),
    ];
    expect(() => resolveNode(nodes, '10.0.0.1')).toThrow(expect.objectContaining({ exitCode: EXIT.USAGE }));
    expect(() => resolveNode(nodes, '10.0.0.1')).toThrow(
      '"10.0.0.1" matches 2 nodes (aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa (dead), cccccccc-cccc-4ccc-8ccc-cccccccccccc (alive)): give the UUID',
    );
    // Even with only one of them alive (a node chooses the address it reports); the UUID always works.
    expect(resolveNode(nodes, 'cccc').uuid).toMatch(/^cccc/);
    expect(resolveNode(nodes, 'AAAAAAAA-AAAA-4AAA-8AAA-AAAAAAAAAAAA').uuid).toMatch(/^aaaa/);
  });
  it('names `flocker nodes forget <dead uuid>` as the way out when all but one are dead (a reprovisioned host)', () => {
    // FR19-5: the ordinary state after reprovisioning a host under a new UUID, until the old node is forgotten.
    const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
    const B = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
    const C = 'cccccccc-cccc-4ccc-8ccc-cccccccccccc';
    expect(() => resolveNode([node(A, '10.0.0.1', false), node(C, '10.0.0.1', true)], '10.0.0.1')).toThrow(
      `: give the UUID, or forget the dead node if the host was reprovisioned: flocker nodes forget ${A}`,
    );
    expect(() =>
      resolveNode([node(A, '10.0.0.1', false), node(B, '10.0.0.1', false), node(C, '10.0.0.1', true)], '10.0.0.1'),
    ).toThrow(
      `or forget the dead nodes if the host was reprovisioned: flocker nodes forget ${A}; flocker nodes forget ${B}`,
    );
    // Two alive (one may be lying about its address): no such hint, forgetting would not help.
    let message = '';
    try {
      resolveNode([node(A, '10.0.0.1', true), node(C, '10.0.0.1', true)], '10.0.0.1');
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/give the UUID$/);
  });
});
