/**
 * Keystone v3 tokens: password or application-credential authentication, one
 * token shared by all callers, renewed shortly before it expires and whenever
 * a service answers 401.
 */
import { type JsonHttp, parseBody } from './http';
import { type CatalogEntry, type CinderDriverOptions, TokenResponseSchema } from './schemas';

export interface Token {
  readonly id: string;
  readonly expiresAt: number;
  readonly projectId: string | undefined;
  readonly catalog: CatalogEntry[];
}

export interface TokenSource {
  /** A valid token (cached until close to expiry). */
  token(): Promise<Token>;
  /** Drops the cached token (after a 401) so the next call authenticates again. */
  invalidate(rejected: Token): void;
}

/** Renew this long before expiry, so a request never carries a token that expires in flight. */
export const RENEW_BEFORE_MS = 5 * 60 * 1000;

export type KeystoneAuthOptions = Pick<
  CinderDriverOptions,
  | 'auth_plugin'
  | 'auth_url'
  | 'username'
  | 'user_id'
  | 'password'
  | 'user_domain_name'
  | 'project_name'
  | 'project_id'
  | 'project_domain_name'
  | 'application_credential_id'
  | 'application_credential_secret'
>;

/** The POST /v3/auth/tokens body for the configured auth plugin. */
export function authRequestBody(o: KeystoneAuthOptions): unknown {
  if (o.auth_plugin === 'v3applicationcredential') {
    // An application credential is bound to its project: no scope allowed.
    return {
      auth: {
        identity: {
          methods: ['application_credential'],
          application_credential: { id: o.application_credential_id, secret: o.application_credential_secret },
        },
      },
    };
  }
  const user =
    o.user_id !== undefined
      ? { id: o.user_id, password: o.password }
      : { name: o.username, password: o.password, domain: { name: o.user_domain_name } };
  const project =
    o.project_id !== undefined
      ? { id: o.project_id }
      : { name: o.project_name, domain: { name: o.project_domain_name } };
  return { auth: { identity: { methods: ['password'], password: { user } }, scope: { project } } };
}

export function tokensUrl(authUrl: string): string {
  const base = authUrl.replace(/\/+$/, '');
  return /\/v3$/.test(base) ? `${base}/auth/tokens` : `${base}/v3/auth/tokens`;
}

export class KeystoneSession implements TokenSource {
  private current: Token | undefined;
  private pending: Promise<Token> | undefined;

  constructor(
    private readonly http: JsonHttp,
    private readonly options: KeystoneAuthOptions,
    private readonly now: () => number = Date.now,
  ) {
    if (options.auth_url === undefined) throw new Error('KeystoneSession needs auth_url');
  }

  async token(): Promise<Token> {
    const t = this.current;
    if (t !== undefined && t.expiresAt - RENEW_BEFORE_MS > this.now()) return t;
    // One authentication at a time; concurrent callers share it.
    this.pending ??= this.authenticate().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  invalidate(rejected: Token): void {
    if (this.current?.id === rejected.id) this.current = undefined;
  }

  private async authenticate(): Promise<Token> {
    const res = await this.http.request('POST', tokensUrl(this.options.auth_url ?? ''), {
      body: authRequestBody(this.options),
      idempotent: true, // issuing a token twice is harmless
    });
    const subject = res.headers['x-subject-token'];
    const id = Array.isArray(subject) ? subject[0] : subject;
    if (!id) throw new Error('Keystone answered without an X-Subject-Token header');
    const body = parseBody(TokenResponseSchema, res.body, 'Keystone token');
    const expiresAt = Date.parse(body.token.expires_at);
    if (!Number.isFinite(expiresAt))
      throw new Error(`Keystone token has an unreadable expires_at ${body.token.expires_at}`);
    const token: Token = { id, expiresAt, projectId: body.token.project?.id, catalog: body.token.catalog };
    this.current = token;
    return token;
  }
}

/** A fixed "user:project" token for Cinder's noauth middleware (tests). */
export class NoAuthTokenSource implements TokenSource {
  private readonly fixed: Token;
  constructor(projectId: string, userId = 'flocker') {
    this.fixed = { id: `${userId}:${projectId}`, expiresAt: Number.MAX_SAFE_INTEGER, projectId, catalog: [] };
  }
  async token(): Promise<Token> {
    return this.fixed;
  }
  invalidate(): void {}
}

/**
 * The URL of a service from the token's catalog. Several services may share a
 * type's prefix (volumev3, volumev2); we ask for the exact type.
 */
export function findEndpoint(
  catalog: readonly CatalogEntry[],
  type: string,
  iface: string,
  region: string | undefined,
): string {
  const entry = catalog.find((e) => e.type === type);
  if (entry === undefined) {
    throw new Error(
      `the Keystone catalog has no ${type} service (found: ${catalog.map((e) => e.type).join(', ') || 'none'})`,
    );
  }
  const matches = entry.endpoints.filter(
    (e) => e.interface === iface && (region === undefined || e.region_id === region || e.region === region),
  );
  if (matches.length === 0) {
    const have = entry.endpoints.map((e) => `${e.interface}@${e.region_id ?? e.region ?? '?'}`).join(', ');
    throw new Error(
      `the Keystone catalog has no ${iface} ${type} endpoint${region === undefined ? '' : ` in region ${region}`} (found: ${have})`,
    );
  }
  return matches[0].url.replace(/\/+$/, '');
}
