import { FlockerApiError, type FlockerClient } from '@flocker/api';
import { buildOpenApi } from './openapi';
import { routes } from './routes';
import type { ControlService } from './server';
import { closeAndRemove, NODE_A as A, NODE_B as B, startOnDir, startWithTwoNodes } from './testing/httpService';

async function status(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    if (err instanceof FlockerApiError) return `${err.status} ${err.code}`;
    throw err;
  }
}

describe('container routes over HTTP', () => {
  let dir: string;
  let svc: ControlService;
  let client: FlockerClient;

  beforeEach(async () => {
    ({ dir, svc, client } = await startWithTwoNodes('flocker-containers-'));
  });
  afterEach(() => closeAndRemove(svc, dir));

  it('create, list, move (the dataset follows), delete; the configuration survives a restart', async () => {
    const d = await client.createDataset({ primary: A, metadata: { name: 'db' } });
    const created = await client.createContainer({
      name: 'db',
      node_uuid: A,
      image: 'busybox',
      volumes: [{ dataset_id: d.dataset_id, mountpoint: '/data' }],
    });
    expect(created.restart_policy).toEqual({ name: 'never' });
    expect(await status(client.createContainer({ name: 'db', node_uuid: A, image: 'x' }))).toBe(
      '409 CONTAINER_NAME_COLLISION',
    );
    expect((await client.moveContainer('db', { node_uuid: B })).node_uuid).toBe(B);
    expect((await client.listDatasets())[0]?.primary).toBe(B);
    expect(await status(client.moveContainer('nope', { node_uuid: B }))).toBe('404 CONTAINER_NOT_FOUND');

    await svc.close();
    ({ svc, client } = await startOnDir(dir));
    expect(await client.listContainers()).toEqual([{ ...created, node_uuid: B }]);
    expect((await client.deleteContainer('db')).name).toBe('db');
    expect(await client.listContainers()).toEqual([]);
    expect(await status(client.deleteContainer('db'))).toBe('404 CONTAINER_NOT_FOUND');
  });

  it('refuses bad input with 400', async () => {
    const post = (body: unknown) =>
      fetch(`${svc.url}/v1/configuration/containers`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      }).then((r) => r.status);
    expect(await post({ name: 'bad name!', node_uuid: A, image: 'x' })).toBe(400);
    expect(
      await post({
        name: 'x',
        node_uuid: A,
        image: 'x',
        volumes: [
          { dataset_id: A, mountpoint: '/a' },
          { dataset_id: B, mountpoint: '/b' },
        ],
      }),
    ).toBe(400);
    expect(await post({ name: 'x', node_uuid: A, image: 'x', restart_policy: { name: 'sometimes' } })).toBe(400);
    expect(await post({ name: 'x', node_uuid: A, image: 'x', surprise: 1 })).toBe(400);
    expect(
      await status(
        client.compose({
          applications: { version: 1, applications: {} },
          deployment: { version: 1, nodes: { [A]: ['x'] } },
        }),
      ),
    ).toBe('400 UNKNOWN_APPLICATION');
  });

  it('_compose places applications; container agents report state; /v1/state/containers lists it', async () => {
    const result = await client.compose({
      applications: {
        version: 1,
        applications: { web: { image: 'nginx', ports: [{ internal: 80, external: 8080 }] } },
      },
      deployment: { version: 1, nodes: { '10.0.0.2': 'web' } },
    });
    expect(result.map((c) => [c.name, c.node_uuid])).toEqual([['web', B]]);
    await client.reportContainers(B, { containers: [{ name: 'web', image: 'nginx', running: true }] });
    expect(await client.listContainerState()).toEqual([
      { name: 'web', node_uuid: B, image: 'nginx', running: true, reported_at: expect.any(String) },
    ]);
    expect(await status(client.reportContainers('cccccccc-cccc-4ccc-8ccc-cccccccccccc', { containers: [] }))).toBe(
      '400 UNKNOWN_NODE',
    );
  });

  it("a container agent's failure (code, message) reaches /v1/state/containers", async () => {
    const error = {
      code: 'IMAGE_NOT_FOUND' as const,
      message: 'No such image: nope:1',
      attempts: 2,
      since: '2026-01-01T00:00:00.000Z',
    };
    await client.reportContainers(B, { containers: [{ name: 'web', image: 'nope:1', running: false, error }] });
    expect(await client.listContainerState()).toEqual([
      { name: 'web', node_uuid: B, image: 'nope:1', running: false, error, reported_at: expect.any(String) },
    ]);
  });

  it('the OpenAPI document describes the container routes', () => {
    const doc = buildOpenApi(routes) as { paths: Record<string, Record<string, unknown>> };
    expect(Object.keys(doc.paths['/v1/configuration/containers'] ?? {})).toEqual(['get', 'post']);
    expect(Object.keys(doc.paths['/v1/configuration/containers/{name}'] ?? {})).toEqual(['post', 'delete']);
    expect(doc.paths['/v1/configuration/_compose']?.['post']).toBeDefined();
    expect(doc.paths['/v1/state/containers']?.['get']).toBeDefined();
    expect(doc.paths['/v1/agent/nodes/{uuid}/containers']?.['put']).toBeDefined();
  });
});
