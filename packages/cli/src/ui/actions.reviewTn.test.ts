/**
 * Review TN (session 21), F1/F9: the UI API took a node only by UUID (404 "no node 10.77.0.11 has reported…" for the
 * address the CLI accepts), and created volumes with UUID-shaped names (the CLI's "name or id" then is ambiguous).
 */
import { A, B, node, snapshot } from '@flocker/web-ui/testing';
import type { DatasetConfiguration, UpdateDatasetRequest } from '@flocker/api';
import { toActionError, UiActions, type UiClient } from './actions';

const D = 'cd9637d2-77b0-4daf-865c-44825be2dedb';
const notCalled = (): Promise<never> => Promise.reject(new Error('not expected'));

function setUp(nodes = [node(A, '10.77.0.11'), node(B, '10.77.0.13')]) {
  const calls: unknown[] = [];
  const made = (primary: string, metadata: Record<string, string> = {}): DatasetConfiguration => ({
    dataset_id: D,
    primary,
    maximum_size: null,
    metadata,
    deleted: false,
  });
  const client: UiClient = {
    waitForCluster: notCalled,
    createDataset: (req) => {
      calls.push(['create', req.primary]);
      return Promise.resolve(made(req.primary, req.metadata));
    },
    updateDataset: (id: string, req: UpdateDatasetRequest) => {
      calls.push(['update', id, req.primary]);
      return Promise.resolve(made(req.primary ?? A));
    },
    deleteDataset: notCalled,
    releaseLease: notCalled,
    createSnapshot: notCalled,
    deleteSnapshot: notCalled,
  };
  const s = snapshot({ nodes, datasets: [made(A, { name: 'web' })] });
  return { calls, actions: new UiActions(client, () => s) };
}
const refused = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => toActionError(e),
  );

describe('the UI API takes a node by UUID or by address, as the CLI does', () => {
  it('create and move send the UUID of the node at that address', async () => {
    const { calls, actions } = setUp();
    await actions.create({ name: 'db', size: '1G', node: '10.77.0.13' });
    await actions.move(D, { node: '10.77.0.13' });
    expect(calls).toEqual([
      ['create', B],
      ['update', D, B],
    ]);
  });

  it('an address no node reports is 404 saying so; one two nodes report is refused', async () => {
    const { actions } = setUp();
    expect(await refused(actions.create({ name: 'db', size: '1G', node: '10.9.9.9' }))).toMatchObject({
      status: 404,
      message: 'no node with UUID or address 10.9.9.9 has reported to the control service',
    });
    const twin = setUp([node(A, '10.77.0.11'), node(B, '10.77.0.11')]);
    expect(await refused(twin.actions.create({ name: 'db', size: '1G', node: '10.77.0.11' }))).toMatchObject({
      status: 409,
      code: 'AMBIGUOUS_NODE',
    });
    expect(twin.calls).toEqual([]);
  });
});

describe('the UI API refuses a new UUID-shaped volume name', () => {
  it('create answers 400 and asks nothing', async () => {
    const { calls, actions } = setUp();
    expect(await refused(actions.create({ name: D, size: '1G', node: A }))).toMatchObject({
      status: 400,
      message: expect.stringMatching(/shaped like a volume id/),
    });
    expect(calls).toEqual([]);
  });
});
