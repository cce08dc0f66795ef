/**
 * Review FR F3 (session 18): since 160a22b etcd forgets nodes too, yet /v1/openapi.json still documented a 501 ("this
 * configuration store cannot forget nodes (etcd)") for DELETE /v1/configuration/nodes/{node}. The document lists what
 * the route can answer, and every error code the service has is one something raises.
 */
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { HTTP_STATUS } from './httpErrors';
import { buildOpenApi } from './openapi';
import { routes } from './routes';

type Doc = { paths: Record<string, Record<string, { responses?: Record<string, unknown> }>> };

it('forgetting a node documents 200, 400, 404 and 409: no 501, whatever the store', () => {
  const doc = JSON.parse(JSON.stringify(buildOpenApi(routes))) as Doc;
  const forget = doc.paths['/v1/configuration/nodes/{node}']?.['delete'];
  expect(Object.keys(forget?.responses ?? {}).sort()).toEqual(['200', '400', '404', '409', '503']);
});

it('no error code is left that nothing in the service raises', () => {
  const dir = path.join(__dirname, '..', 'src');
  const sources = readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && f !== 'errors.ts')
    .map((f) => readFileSync(path.join(dir, f), 'utf8'))
    .join('\n')
    // HTTP_STATUS's own entries (`  CODE: 409,`) name every code.
    .replace(/^ {2}[A-Z_]+: \d{3},$/gm, '');
  const unused = Object.keys(HTTP_STATUS).filter((code) => !sources.includes(`'${code}'`));
  expect(unused).toEqual([]);
});
