/**
 * Rackspace Identity v2.0 with API-key credentials (auth_plugin rackspace): Rackspace Cloud Block
 * Storage is the Cinder API behind this identity service, and its servers are Nova (Cloud Servers).
 *
 * What this rests on (Rackspace's documentation):
 * - https://docs.rackspace.com/docs/annotated-authentication-request-and-response — POST /v2.0/tokens
 *   with {"auth": {"RAX-KSKEY:apiKeyCredentials": {"username", "apiKey"}}}; the answer is
 *   {"access": {"token": {"id", "expires", "tenant": {"id", "name"}}, "user", "serviceCatalog"}}.
 * - https://docs.rackspace.com/docs/cloud-identity/v2/general-api-info/svc-catalog-ovw — every catalog
 *   entry has a name and a service type; endpoints carry region, tenantId, publicURL and (where the
 *   service has one) internalURL (ServiceNet).
 * - https://docs.rackspace.com/docs/cloud-servers/v2/getting-started/authenticate — the identity endpoint
 *   https://identity.api.rackspacecloud.com/v2.0; a token expires and a new one is then requested.
 * Cloud Block Storage is listed under type "volume" (name cloudBlockStorage), Cloud Servers under
 * "compute" (cloudServersOpenStack); a volume attaches only to a server in its own region.
 */
import { z } from 'zod';
import { type JsonHttp, parseBody } from './http';
import { RENEW_BEFORE_MS, type Token, type TokenSource } from './keystone';
import type { CatalogEntry, CinderDriverOptions } from './schemas';

export const RACKSPACE_IDENTITY_URL = 'https://identity.api.rackspacecloud.com/v2.0';

const V2EndpointSchema = z.object({
  region: z.string().nullish(),
  tenantId: z.string().nullish(),
  publicURL: z.string().optional(),
  internalURL: z.string().optional(),
  adminURL: z.string().optional(),
});

export const V2AccessSchema = z.object({
  access: z.object({
    token: z.object({
      id: z.string().min(1),
      expires: z.string(),
      tenant: z.object({ id: z.string() }).optional(),
    }),
    serviceCatalog: z
      .array(z.object({ type: z.string(), name: z.string().optional(), endpoints: z.array(V2EndpointSchema) }))
      .default([]),
  }),
});

export type RackspaceAuthOptions = Pick<CinderDriverOptions, 'auth_url' | 'username' | 'api_key' | 'project_id'>;

/** The POST /v2.0/tokens body (a tenant only when configured: an API key names its account). */
export function rackspaceAuthBody(o: RackspaceAuthOptions): unknown {
  return {
    auth: {
      'RAX-KSKEY:apiKeyCredentials': { username: o.username, apiKey: o.api_key },
      ...(o.project_id !== undefined ? { tenantId: o.project_id } : {}),
    },
  };
}

export function v2TokensUrl(authUrl: string): string {
  const base = authUrl.replace(/\/+$/, '');
  return /\/v2\.0$/.test(base) ? `${base}/tokens` : `${base}/v2.0/tokens`;
}

/** A v2.0 service catalogue in the v3 shape findEndpoint reads (one endpoint per interface). */
export function v2CatalogToV3(catalog: z.infer<typeof V2AccessSchema>['access']['serviceCatalog']): CatalogEntry[] {
  return catalog.map((s) => ({
    type: s.type,
    ...(s.name !== undefined ? { name: s.name } : {}),
    endpoints: s.endpoints.flatMap((e) =>
      (
        [
          ['public', e.publicURL],
          ['internal', e.internalURL],
          ['admin', e.adminURL],
        ] as const
      )
        .filter((pair): pair is readonly ['public' | 'internal' | 'admin', string] => pair[1] !== undefined)
        .map(([iface, url]) => ({ interface: iface, region: e.region ?? null, region_id: e.region ?? null, url })),
    ),
  }));
}

export class RackspaceSession implements TokenSource {
  private current: Token | undefined;
  private pending: Promise<Token> | undefined;

  constructor(
    private readonly http: JsonHttp,
    private readonly options: RackspaceAuthOptions,
    private readonly now: () => number = Date.now,
  ) {}

  async token(): Promise<Token> {
    const t = this.current;
    if (t !== undefined && t.expiresAt - RENEW_BEFORE_MS > this.now()) return t;
    this.pending ??= this.authenticate().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  invalidate(rejected: Token): void {
    if (this.current?.id === rejected.id) this.current = undefined;
  }

  private async authenticate(): Promise<Token> {
    const res = await this.http.request('POST', v2TokensUrl(this.options.auth_url ?? RACKSPACE_IDENTITY_URL), {
      body: rackspaceAuthBody(this.options),
      idempotent: true,
    });
    const { access } = parseBody(V2AccessSchema, res.body, 'Rackspace Identity token');
    const expiresAt = Date.parse(access.token.expires);
    if (!Number.isFinite(expiresAt))
      throw new Error(`Rackspace Identity token has an unreadable expires ${access.token.expires}`);
    const token: Token = {
      id: access.token.id,
      expiresAt,
      projectId: access.token.tenant?.id,
      catalog: v2CatalogToV3(access.serviceCatalog),
    };
    this.current = token;
    return token;
  }
}
