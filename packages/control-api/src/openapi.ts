/** OpenAPI 3.1 document generated from the route table and the wire schemas. */
import { z } from 'zod';
import { FLOCKER_VERSION, type RouteContract } from '@flocker/api';

type Json = Record<string, unknown>;

function schemaOf(schema: z.ZodType, io: 'input' | 'output'): Json {
  const out = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'throw' }) as Json;
  delete out['$schema'];
  return out;
}

/** `/v1/configuration/datasets/:id` → `/v1/configuration/datasets/{id}` */
export function openApiPath(expressPath: string): string {
  return expressPath.replace(/:([A-Za-z_]+)/g, '{$1}');
}

/** A whole list's entity tag (RouteContract.entityTag). */
const ETAG_HEADER: Json = {
  description:
    "Strong; names the serving process and the list's version (a restart or another replica never matches it).",
  schema: { type: 'string' },
};

export function buildOpenApi(routes: readonly RouteContract[]): Json {
  const paths: Record<string, Json> = {};
  for (const route of routes) {
    const parameters: Json[] = [];
    for (const [where, obj] of [
      ['path', route.params],
      ['query', route.query],
    ] as const) {
      if (obj === undefined) continue;
      for (const [name, field] of Object.entries(obj.shape)) {
        const fieldSchema = field as z.ZodType;
        parameters.push({
          name,
          in: where,
          required: where === 'path' || !fieldSchema.safeParse(undefined).success,
          schema: schemaOf(fieldSchema, 'input'),
          ...(fieldSchema.description !== undefined ? { description: fieldSchema.description } : {}),
        });
      }
    }
    if (route.conditional) {
      parameters.push({
        name: 'X-If-Configuration-Matches',
        in: 'header',
        required: false,
        schema: { type: 'string' },
        description: 'Apply the write only if the configuration tag still equals this value (else 412).',
      });
    }
    if (route.entityTag) {
      parameters.push({
        name: 'If-None-Match',
        in: 'header',
        required: false,
        schema: { type: 'string' },
        description: 'The ETag of the list held: 304 without a body while the list is unchanged.',
      });
    }
    const responses: Json = {};
    for (const [status, r] of Object.entries(route.responses)) {
      responses[status] = {
        description: r.description,
        ...(route.entityTag && status === '200' ? { headers: { ETag: ETAG_HEADER } } : {}),
        content: { 'application/json': { schema: schemaOf(r.schema, 'output') } },
      };
    }
    if (route.entityTag) {
      responses['304'] = {
        description: 'Not Modified: the list is the one If-None-Match names (no body).',
        headers: { ETag: ETAG_HEADER },
      };
    }
    const op: Json = {
      operationId: `${route.method}${openApiPath(route.path).replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ?? '').toUpperCase())}`,
      summary: route.summary,
      tags: [route.tag],
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(route.body !== undefined
        ? {
            requestBody: { required: true, content: { 'application/json': { schema: schemaOf(route.body, 'input') } } },
          }
        : {}),
      responses,
    };
    const p = openApiPath(route.path);
    paths[p] = { ...(paths[p] ?? {}), [route.method]: op };
  }
  paths['/v1/openapi.json'] = {
    get: {
      operationId: 'getOpenApi',
      summary: 'This document.',
      tags: ['meta'],
      responses: {
        200: { description: 'OpenAPI 3.1 document.', content: { 'application/json': { schema: { type: 'object' } } } },
      },
    },
  };
  return {
    openapi: '3.1.0',
    info: {
      title: 'Flocker control service',
      version: FLOCKER_VERSION,
      description:
        'The Flocker v1 dataset API (compatible with ClusterHQ Flocker) and the agent channel. Errors are {description, code}.',
    },
    paths,
  };
}
