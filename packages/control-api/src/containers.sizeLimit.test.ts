/**
 * flocker-deploy's sizes against the primary's backend (follow-up of review T8 TD-3): a volume compose creates or
 * grows beyond what its node's backend can create is refused 400 SIZE_BEYOND_BACKEND, as POST and PATCH
 * /v1/configuration/datasets refuse it, instead of a configuration its agent would fail on (INVALID_SIZE) forever.
 */
import { FlockerApiError, type FlockerClient } from '@flocker/api';
import type { ControlService } from './server';
import { closeAndRemove, NODE_B as B, nodeReport as report, startWithTwoNodes } from './testing/httpService';

const GiB = 1024 ** 3;

async function refusal(p: Promise<unknown>): Promise<{ status: number; code: string | undefined } | 'ok'> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    if (err instanceof FlockerApiError) return { status: err.status, code: err.code };
    throw err;
  }
}

describe('compose against the backend size limit', () => {
  let dir: string;
  let svc: ControlService;
  let client: FlockerClient;
  beforeEach(async () => {
    ({ dir, svc, client } = await startWithTwoNodes('flocker-compose-size-'));
    await client.reportNodeState(report(B, { max_volume_size: 16 * GiB }));
  });
  afterEach(() => closeAndRemove(svc, dir));

  const files = (size: string) => ({
    applications: {
      version: 1,
      applications: { db: { image: 'busybox', volume: { mountpoint: '/data', maximum_size: size } } },
    },
    deployment: { version: 1, nodes: { [B]: ['db'] } },
  });

  test('a new volume, or a grow, beyond the backend: 400 SIZE_BEYOND_BACKEND, nothing stored', async () => {
    expect(await refusal(client.compose(files('32G')))).toEqual({ status: 400, code: 'SIZE_BEYOND_BACKEND' });
    expect(await client.listDatasets()).toEqual([]);
    expect(await client.listContainers()).toEqual([]);
    expect(await refusal(client.compose(files('8G')))).toBe('ok');
    expect(await refusal(client.compose(files('32G')))).toEqual({ status: 400, code: 'SIZE_BEYOND_BACKEND' });
    expect((await client.listDatasets()).map((d) => d.maximum_size)).toEqual([8 * GiB]);
    // Within the limit: grown.
    expect(await refusal(client.compose(files('16G')))).toBe('ok');
    expect((await client.listDatasets()).map((d) => d.maximum_size)).toEqual([16 * GiB]);
  });
});
