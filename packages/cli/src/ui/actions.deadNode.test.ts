/**
 * Review T2 (session 18): the web UI's create refuses no dead node, though its move does.
 * Reproduced on `./dev cluster up 3`: `./dev cluster poweroff c`, then (once c is declared dead)
 * POST /api/volumes {"name":"t2x","size":"1G","node":"<c's uuid>"} answers 200 and the volume is
 * configured on a node that cannot create it ("node 10.77.0.13 is not alive" in the list), while
 * POST /api/volumes/<id>/move {"node":"<c's uuid>"} is refused with NODE_NOT_ALIVE. The page offers
 * only live nodes, but one that died after the page rendered its form is sent as chosen.
 */
import { A, B, node, snapshot } from '@flocker/web-ui/testing';
import type { DatasetConfiguration } from '@flocker/api';
import { UiActions, UiActionError, type UiClient } from './actions';

describe('UiActions.create on a dead node', () => {
  it('is refused with NODE_NOT_ALIVE, as a move there is, and asks nothing', async () => {
    const created: unknown[] = [];
    const notCalled = (): Promise<never> => Promise.reject(new Error('not expected'));
    const client: UiClient = {
      waitForCluster: notCalled,
      createDataset: (req) => {
        created.push(req);
        const d: DatasetConfiguration = {
          dataset_id: 'cd9637d2-77b0-4daf-865c-44825be2dedb',
          primary: req.primary,
          maximum_size: req.maximum_size ?? null,
          metadata: req.metadata ?? {},
          deleted: false,
        };
        return Promise.resolve(d);
      },
      updateDataset: notCalled,
      deleteDataset: notCalled,
      releaseLease: notCalled,
      createSnapshot: notCalled,
      deleteSnapshot: notCalled,
    };
    const s = snapshot({ nodes: [node(A, '10.77.0.11'), node(B, '10.77.0.13', { alive: false })] });
    const actions = new UiActions(client, () => s);
    const refusal = await actions.create({ name: 't2x', size: '1G', node: B }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refusal).toBeInstanceOf(UiActionError);
    expect(refusal).toMatchObject({ status: 409, code: 'NODE_NOT_ALIVE' });
    expect(created).toEqual([]);
  });
});
