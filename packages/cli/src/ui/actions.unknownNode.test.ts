/**
 * s25 USER-V F9: POST /api/volumes/<id>/move {"node":"nosuch"} answered 400 "must be a UUID such as …" (the API
 * client's check of primary, with no field named), where a create to that node says which node is unknown.
 */
import { A, D1, dataset, node, snapshot } from '@flocker/web-ui/testing';
import { UiActions, UiActionError, type UiClient } from './actions';

describe('UiActions.move to a node nobody knows', () => {
  const moved: unknown[] = [];
  const notCalled = (): Promise<never> => Promise.reject(new Error('not expected'));
  const client: UiClient = {
    waitForCluster: notCalled,
    createDataset: notCalled,
    updateDataset: (id, req) => {
      moved.push([id, req]);
      return notCalled();
    },
    deleteDataset: notCalled,
    releaseLease: notCalled,
    createSnapshot: notCalled,
    deleteSnapshot: notCalled,
  };
  const s = snapshot({ datasets: [dataset(D1, 'pg', A)], nodes: [node(A, '10.0.0.1')] });
  const actions = new UiActions(client, () => s);

  it('by an address no node has: 404 NODE_NOT_FOUND naming it, as a create; asks nothing', async () => {
    const refusal = await actions.move(D1, { node: 'nosuch' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refusal).toBeInstanceOf(UiActionError);
    expect(refusal).toMatchObject({
      status: 404,
      code: 'NODE_NOT_FOUND',
      message: 'no node with UUID or address nosuch has reported to the control service',
    });
    expect(moved).toEqual([]);
  });
});
