/**
 * The state list's memo key goes into its ETag (Views.cached). Naming every hidden stale "mounted" in the key made the
 * header grow with them: many datasets moved at once (a host evacuated) or every node held below a load floor after
 * a replica starts gave an ETag of tens of KB to MB, beyond what HTTP clients accept (undici: 16 KiB of headers).
 */
import { FlockerClient } from '@flocker/api';
import type { ControlService } from './server';
import { A, B, letterReport as report, mountedManifestation } from './testing/fixtures';
import { startOnLoopback } from './testing/httpService';

let svc: ControlService;
let client: FlockerClient;

beforeEach(async () => {
  svc = await startOnLoopback();
  client = new FlockerClient({ baseUrl: svc.url });
});

afterEach(async () => {
  await svc.close();
});

const mounted = (id: string) => mountedManifestation(id, B);

it('many hidden stale "mounted" keep the state list readable and its ETag short; a change of them changes it', async () => {
  await client.reportNodeState(report(A));
  const ids: string[] = [];
  for (let i = 0; i < 300; i++)
    ids.push((await client.createDataset({ primary: A, maximum_size: 1024 ** 3 })).dataset_id);
  // B's report, built before the moves below, says it has them all mounted: each is hidden once moved onto B.
  await client.reportNodeState(report(B, { manifestations: ids.map(mounted) }));
  for (const id of ids.slice(0, 299)) await client.updateDataset(id, { primary: B });
  const first = await fetch(`${svc.url}/v1/state/datasets`);
  const tag = first.headers.get('etag') ?? '';
  expect(tag.length).toBeGreaterThan(0);
  expect(tag.length).toBeLessThan(200);
  const shown = (await client.listDatasetState()).filter((s) => s.primary === B && s.path !== undefined);
  expect(shown.map((s) => s.dataset_id)).toEqual([ids[299]]);
  // One more hidden: a new body, so a new tag.
  await client.updateDataset(ids[299] ?? '', { primary: B });
  const second = await fetch(`${svc.url}/v1/state/datasets`, { headers: { 'if-none-match': tag } });
  expect(second.status).toBe(200);
  expect(second.headers.get('etag')).not.toBe(tag);
  expect(((await second.json()) as unknown[]).length).toBe(0);
});
