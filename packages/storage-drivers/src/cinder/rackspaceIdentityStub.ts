/**
 * Test process: a Rackspace-style Identity v2.0 endpoint in front of a Cinder that runs with
 * auth_strategy noauth (scripts/cinder.sh). Run as its own process:
 *
 *   node rackspaceIdentityStub.js '{"cinderUrl": "http://127.0.0.1:18776/v3", "username": "u", "apiKey": "k",
 *     "tenant": "…", "region": "ORD", "tokenLifetimeSeconds": 86400}'
 *
 * It prints one JSON line {"url": "http://127.0.0.1:<port>/v2.0"} once listening.
 *
 * It implements what Rackspace documents for POST /v2.0/tokens (see ./rackspace.ts for the pages):
 * the RAX-KSKEY:apiKeyCredentials request, 200 with access.token {id, expires, tenant}, access.user and
 * access.serviceCatalog (cloudBlockStorage of type volume and cloudServersOpenStack of type compute,
 * one endpoint per region with region, tenantId, publicURL and internalURL), 400 for a body without
 * credentials and 401 for a wrong key (Rackspace's documented error codes for this call are 400, 401,
 * 403, 500, 503; its faults have the OpenStack shape {"unauthorized": {"code": 401, "message"}}).
 * The token it issues is "<username>:<tenant>", which Cinder's noauth middleware takes as user and
 * project, so Cinder itself needs no identity service. The other region (DFW) points at a port that
 * refuses connections: a driver that picks the wrong region's endpoint fails.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';

const ConfigSchema = z.object({
  cinderUrl: z.url(),
  username: z.string().min(1),
  apiKey: z.string().min(1),
  tenant: z.string().min(1),
  region: z.string().min(1),
  tokenLifetimeSeconds: z.number().positive().default(86400),
});

const TokenRequestSchema = z.object({
  auth: z.object({
    'RAX-KSKEY:apiKeyCredentials': z.object({ username: z.string(), apiKey: z.string() }),
    tenantId: z.string().optional(),
  }),
});

export function startRackspaceIdentity(config: z.input<typeof ConfigSchema>): Promise<http.Server> {
  const c = ConfigSchema.parse(config);
  const cinder = c.cinderUrl.replace(/\/+$/, '');
  const deadUrl = 'http://127.0.0.1:9'; // discard port: nothing listens
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const send = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      const path = new URL(req.url ?? '/', 'http://x').pathname.replace(/\/+$/, '');
      if (req.method !== 'POST' || path !== '/v2.0/tokens')
        return send(404, { itemNotFound: { code: 404, message: 'Resource not found' } });
      let parsed: z.ZodSafeParseResult<z.infer<typeof TokenRequestSchema>>;
      try {
        parsed = TokenRequestSchema.safeParse(JSON.parse(Buffer.concat(chunks).toString()));
      } catch {
        return send(400, { badRequest: { code: 400, message: 'Invalid json request body' } });
      }
      if (!parsed.success) return send(400, { badRequest: { code: 400, message: 'Invalid request body' } });
      const creds = parsed.data.auth['RAX-KSKEY:apiKeyCredentials'];
      if (creds.username !== c.username || creds.apiKey !== c.apiKey)
        return send(401, { unauthorized: { code: 401, message: 'Username or api key is invalid.' } });
      if (parsed.data.auth.tenantId !== undefined && parsed.data.auth.tenantId !== c.tenant)
        return send(401, { unauthorized: { code: 401, message: 'Not authorized for tenant.' } });
      const expires = new Date(Date.now() + c.tokenLifetimeSeconds * 1000).toISOString();
      const endpoint = (region: string, base: string) => ({
        region,
        tenantId: c.tenant,
        publicURL: `${base}/${c.tenant}`,
        internalURL: `${base}/${c.tenant}`,
      });
      send(200, {
        access: {
          token: { id: `${c.username}:${c.tenant}`, expires, tenant: { id: c.tenant, name: c.tenant } },
          user: { id: '10001', name: c.username, 'RAX-AUTH:defaultRegion': c.region, roles: [] },
          serviceCatalog: [
            {
              name: 'cloudBlockStorage',
              type: 'volume',
              endpoints: [endpoint('DFW', `${deadUrl}/v1`), endpoint(c.region, cinder)],
            },
            {
              name: 'cloudServersOpenStack',
              type: 'compute',
              endpoints: [endpoint('DFW', `${deadUrl}/v2`), endpoint(c.region, `${deadUrl}/v2`)],
            },
          ],
        },
      });
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

if (require.main === module) {
  void startRackspaceIdentity(JSON.parse(process.argv[2] ?? '{}') as z.input<typeof ConfigSchema>).then((server) => {
    const { port } = server.address() as AddressInfo;
    process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}/v2.0` })}\n`);
  });
}
