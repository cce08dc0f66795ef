/**
 * A container's environment is bounded (session 20, follow-up of T6 F-A / 4db8b33): an unbounded record let one
 * request store ~1 MB of variables per container, checked entry by entry. Refused with a 400 whose JSON names the
 * bound, and nothing changes. Also through `_compose`: whatever an application file yields must be a container the
 * configured containers' schema accepts, else a stored configuration could not be read back after a restart.
 */
import {
  CONTAINER_ARRAY_MAX,
  ENVIRONMENT_MAX_ENTRIES,
  ENVIRONMENT_NAME_MAX_LENGTH,
  ENVIRONMENT_VALUE_MAX_LENGTH,
} from '@flocker/api';
import type { ControlService } from './server';
import {
  closeAndRemove,
  configurationVersionOf,
  NODE_A as A,
  postJson,
  type ServiceOnDir,
  startOnDir,
  startWithTwoNodes,
} from './testing/httpService';

const manyVars = (n: number): Record<string, string> =>
  Object.fromEntries(Array.from({ length: n }, (_, i) => [`V${i}`, 'x']));

describe('a container environment beyond the bounds', () => {
  let dir: string;
  let started: ServiceOnDir;
  let svc: ControlService;

  beforeEach(async () => {
    ({ dir, ...started } = await startWithTwoNodes('flocker-fu-env-'));
    svc = started.svc;
  });
  afterEach(() => closeAndRemove(svc, dir));

  /** POSTs `body` to `target`; the answer must be a small JSON 400 with `code`, and the configuration unchanged. */
  async function refused(target: string, body: unknown, code: string, says: RegExp): Promise<void> {
    const before = await configurationVersionOf(started.client);
    const { status, json } = await postJson(started, target, body);
    expect({ status, code: json['code'] }).toEqual({ status: 400, code });
    expect(json['description']).toMatch(says);
    expect(JSON.stringify(json).length).toBeLessThan(8_192);
    expect(await configurationVersionOf(started.client)).toBe(before);
    expect(await started.client.listContainers()).toEqual([]);
  }

  it('POST /v1/configuration/containers: too many variables, a too long name or value', async () => {
    const base = { name: 'web', node_uuid: A, image: 'nginx' };
    await refused(
      '/v1/configuration/containers',
      { ...base, environment: manyVars(ENVIRONMENT_MAX_ENTRIES + 1) },
      'INVALID_REQUEST',
      new RegExp(`environment: at most ${ENVIRONMENT_MAX_ENTRIES} environment variables`),
    );
    await refused(
      '/v1/configuration/containers',
      { ...base, environment: { ['N'.repeat(ENVIRONMENT_NAME_MAX_LENGTH + 1)]: 'x' } },
      'INVALID_REQUEST',
      /^The request is not valid: environment\.N/, // the issue names the key, cut at 300 characters
    );
    await refused(
      '/v1/configuration/containers',
      { ...base, environment: { V: 'v'.repeat(ENVIRONMENT_VALUE_MAX_LENGTH + 1) } },
      'INVALID_REQUEST',
      /environment variable values are at most/,
    );
  }, 60_000);

  it('_compose: a Flocker application file, a Compose file (mapping or list), ports beyond the bound', async () => {
    const deployment = { version: 1, nodes: { [A]: ['web'] } };
    const flocker = (app: Record<string, unknown>) => ({
      applications: { version: 1, applications: { web: { image: 'nginx', ...app } } },
      deployment,
    });
    const compose = (svc: Record<string, unknown>) => ({
      applications: { services: { web: { image: 'nginx', ...svc } } },
      deployment,
    });
    const many = manyVars(ENVIRONMENT_MAX_ENTRIES + 1);
    for (const body of [
      flocker({ environment: many }),
      compose({ environment: many }),
      compose({ environment: Object.entries(many).map(([k, v]) => `${k}=${v}`) }),
    ]) {
      await refused('/v1/configuration/_compose', body, 'INVALID_CONFIGURATION_FILE', /at most/);
    }
    const ports = Array.from({ length: CONTAINER_ARRAY_MAX + 1 }, (_, i) => ({ internal: 80, external: 1024 + i }));
    await refused('/v1/configuration/_compose', flocker({ ports }), 'INVALID_CONFIGURATION_FILE', /at most|<=/);
    // Within every file bound, yet a Compose link yields a link per published port of its target: 41 x 100 links.
    const db = { image: 'postgres', ports: Array.from({ length: 100 }, (_, i) => `${2000 + i}:${5000 + i}`) };
    const web = { image: 'nginx', links: Array.from({ length: 41 }, (_, i) => `db:a${i}`) };
    await refused(
      '/v1/configuration/_compose',
      { applications: { services: { db, web } }, deployment: { version: 1, nodes: { [A]: ['db', 'web'] } } },
      'INVALID_CONFIGURATION_FILE',
      /The application file is invalid: web\.links: Too big/,
    );
  }, 60_000);

  it('a container at the bounds is accepted and read back after a restart', async () => {
    const environment = {
      ...manyVars(ENVIRONMENT_MAX_ENTRIES - 1),
      ['N'.repeat(ENVIRONMENT_NAME_MAX_LENGTH)]: 'v'.repeat(ENVIRONMENT_VALUE_MAX_LENGTH),
    };
    const created = await started.client.createContainer({ name: 'web', node_uuid: A, image: 'nginx', environment });
    expect(Object.keys(created.environment)).toHaveLength(ENVIRONMENT_MAX_ENTRIES);
    await svc.close();
    started = await startOnDir(dir);
    svc = started.svc;
    expect(await started.client.listContainers()).toEqual([created]);
  }, 60_000);
});
