/**
 * The data-node marker (issue 24): a metadata key only the control service sets. A client's create
 * or update naming it is refused (set or removed), it does not count toward the metadata key limit,
 * and the opt-in to start a dataset empty anyway is a key an update may set.
 */
import {
  clientMetadataKeyCount,
  CreateDatasetRequest,
  DatasetConfiguration,
  METADATA_ACCEPT_DATA_LOSS_KEY,
  METADATA_DATA_NODE_KEY,
  METADATA_MAX_KEYS,
  Metadata,
  UpdateDatasetRequest,
} from './schemas';

const NODE = '3f9a0c4e-1b2d-4c5e-8f70-9a1b2c3d4e5f';
const D = '11111111-1111-4111-8111-111111111111';

const keys = (n: number): Record<string, string> =>
  Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 'v']));

function messages(r: { success: boolean; error?: { issues: { path: PropertyKey[]; message: string }[] } }): string[] {
  return (r.error?.issues ?? []).map((i) => `${i.path.map(String).join('.')}: ${i.message}`);
}

describe('the data-node marker is the control service’s own', () => {
  it('a create naming it is refused, saying why', () => {
    const r = CreateDatasetRequest.safeParse({ primary: NODE, metadata: { [METADATA_DATA_NODE_KEY]: NODE } });
    expect(r.success).toBe(false);
    expect(messages(r)).toEqual([
      `metadata.${METADATA_DATA_NODE_KEY}: ${METADATA_DATA_NODE_KEY} is set by the control service (the node that may hold a local dataset's data, recorded at each move): a client may not set or remove it`,
    ]);
  });

  it.each([
    ['set', NODE],
    ['removed', null],
  ])('an update that has it %s is refused with the same reason (not the list of updatable keys)', (_, value) => {
    const r = UpdateDatasetRequest.safeParse({ metadata: { [METADATA_DATA_NODE_KEY]: value } });
    expect(r.success).toBe(false);
    const m = messages(r);
    expect(m).toHaveLength(1);
    expect(m[0]).toContain('is set by the control service');
    expect(m[0]).not.toContain('can change after creation');
  });

  it('other keys an update may not change are still refused as before', () => {
    const r = UpdateDatasetRequest.safeParse({ metadata: { name: 'x' } });
    expect(messages(r)).toEqual([expect.stringContaining('can change after creation')]);
  });

  it('accept-data-loss is a key an update may set or remove', () => {
    for (const value of ['true', null])
      expect(UpdateDatasetRequest.parse({ metadata: { [METADATA_ACCEPT_DATA_LOSS_KEY]: value } })).toEqual({
        metadata: { [METADATA_ACCEPT_DATA_LOSS_KEY]: value },
      });
    expect(
      CreateDatasetRequest.safeParse({ primary: NODE, metadata: { [METADATA_ACCEPT_DATA_LOSS_KEY]: 'true' } }).success,
    ).toBe(true);
  });

  it('does not count toward the key limit: a dataset with every client key and the marker is valid', () => {
    const full = { ...keys(METADATA_MAX_KEYS), [METADATA_DATA_NODE_KEY]: NODE };
    expect(clientMetadataKeyCount(full)).toBe(METADATA_MAX_KEYS);
    expect(Metadata.safeParse(full).success).toBe(true);
    expect(
      DatasetConfiguration.safeParse({ dataset_id: D, primary: NODE, metadata: full, deleted: false }).success,
    ).toBe(true);
    // One client key more is still refused.
    expect(Metadata.safeParse({ ...full, extra: 'v' }).success).toBe(false);
    expect(Metadata.safeParse(keys(METADATA_MAX_KEYS + 1)).success).toBe(false);
  });
});
