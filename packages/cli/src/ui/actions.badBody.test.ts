/**
 * A bad create body is answered in the form's words, each problem once (review T2 F9e): a missing field said
 * "node: Invalid input: expected string, received undefined" on top of the real problem, and the size was
 * checked only once a node was given, so fixing the node revealed a second refusal.
 */
import { A, node, snapshot } from '@flocker/web-ui/testing';
import { toActionError, UiActions, type UiClient } from './actions';

const notCalled = (): Promise<never> => Promise.reject(new Error('not expected'));
const client: UiClient = {
  waitForCluster: notCalled,
  createDataset: notCalled,
  updateDataset: notCalled,
  deleteDataset: notCalled,
  releaseLease: notCalled,
  createSnapshot: notCalled,
  deleteSnapshot: notCalled,
};
const actions = new UiActions(client, () => snapshot({ nodes: [node(A, '10.77.0.11')] }));

async function refusal(body: unknown): Promise<{ status: number; code: string; message: string }> {
  const e = toActionError(
    await actions.create(body).then(
      () => new Error('accepted'),
      (x: unknown) => x,
    ),
  );
  return { status: e.status, code: e.code, message: e.message };
}

describe('UiActions.create with a bad body', () => {
  it('names a missing node, size or name as the form does, not as a type error', async () => {
    expect(await refusal({ name: 'web', size: '1G' })).toEqual({
      status: 400,
      code: 'INVALID_REQUEST',
      message: 'choose a node',
    });
    expect(await refusal({ name: 'web', node: A })).toEqual({
      status: 400,
      code: 'INVALID_REQUEST',
      message: 'give a size such as 1GiB',
    });
    expect((await refusal({ size: '1G', node: A })).message).toBe('a volume needs a name');
  });

  it('says a bad size even when the node is missing too (one answer names every problem)', async () => {
    expect(await refusal({ name: 'web', size: '1K' })).toEqual({
      status: 400,
      code: 'INVALID_SIZE',
      message: 'size "1K" is too small: at least 64 MiB; choose a node',
    });
    expect((await refusal({ name: 'web', size: 'lots', node: '' })).message).toMatch(
      /^size "lots" is not understood: .*; choose a node$/,
    );
  });

  it('still names a field of the wrong type', async () => {
    expect((await refusal({ name: 'web', size: '1G', node: 5 })).message).toBe(
      'node: Invalid input: expected string, received number',
    );
  });
});
