/**
 * The narrow ScaleIO / PowerFlex REST gateway client the driver needs.
 *
 * Authentication (Cinder's rest_client.py and goscaleio api.go): GET /api/login with HTTP basic
 * auth username:password answers the token as a JSON string; every later request sends basic
 * auth with the token as the password. A 401 means the token lapsed: log in again once.
 * Errors carry {message, httpStatusCode, errorCode} (goscaleio types.Error); the driver keys on
 * errorCode 79 ("Could not find the volume", Cinder's VOLUME_NOT_FOUND_ERROR) and on messages.
 * Transient failures (connection errors, 429, 503; 5xx for idempotent calls) are retried with
 * the runtime's jittered backoff by JsonHttp.
 */
import { z } from 'zod';
import {
  type HttpMethod,
  JsonHttp,
  OpenStackHttpError,
  parseBody,
  type RequestOptions,
  type RetryPolicy,
} from '../cinder/http';
import {
  CreatedSchema,
  ScaleIoErrorSchema,
  SdcSchema,
  SnapshotVolumesRespSchema,
  SystemSchema,
  VolumeSchema,
  type ScaleIoSdc,
  type ScaleIoVolume,
} from './schemas';

/** Cinder's VOLUME_NOT_FOUND_ERROR (and OLD_VOLUME_NOT_FOUND_ERROR before it). */
export const VOLUME_NOT_FOUND_CODES = new Set([79, 78]);

export class ScaleIoApiError extends Error {
  constructor(
    readonly status: number,
    readonly errorCode: number | undefined,
    /** The gateway's own message. */
    readonly gatewayMessage: string,
    readonly method: HttpMethod,
    readonly path: string,
  ) {
    super(
      `${method} ${path} failed with HTTP ${status}${errorCode !== undefined ? ` (errorCode ${errorCode})` : ''}: ${gatewayMessage}`,
    );
    this.name = 'ScaleIoApiError';
  }

  get notFound(): boolean {
    return (
      this.status === 404 ||
      (this.errorCode !== undefined && VOLUME_NOT_FOUND_CODES.has(this.errorCode)) ||
      /could not find the volume/i.test(this.gatewayMessage)
    );
  }
}

export interface ScaleIoClientOptions {
  readonly gatewayUrl: string;
  readonly username: string;
  readonly password: string;
  readonly verifyPeer: boolean;
  readonly caPath?: string;
  readonly timeoutMs: number;
  readonly retry?: RetryPolicy;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly onRetry?: (info: {
    method: HttpMethod;
    url: string;
    attempt: number;
    delayMs: number;
    reason: string;
  }) => void;
}

function basic(user: string, secret: string): string {
  return `Basic ${Buffer.from(`${user}:${secret}`).toString('base64')}`;
}

export class ScaleIoClient {
  private readonly http: JsonHttp;
  private readonly base: string;
  private token: Promise<string> | undefined;

  constructor(private readonly o: ScaleIoClientOptions) {
    this.http = new JsonHttp({
      verifyPeer: o.verifyPeer,
      ...(o.caPath !== undefined ? { caPath: o.caPath } : {}),
      timeoutMs: o.timeoutMs,
      ...(o.retry !== undefined ? { retry: o.retry } : {}),
      ...(o.sleep !== undefined ? { sleep: o.sleep } : {}),
      ...(o.onRetry !== undefined ? { onRetry: o.onRetry } : {}),
    });
    this.base = `${o.gatewayUrl.replace(/\/+$/, '')}/api`;
  }

  async close(): Promise<void> {
    await this.http.close();
  }

  private login(): Promise<string> {
    this.token ??= this.http
      .request('GET', `${this.base}/login`, { headers: { authorization: basic(this.o.username, this.o.password) } })
      .then((res) => parseBody(z.string().min(1), res.body, 'ScaleIO login token'))
      .catch((e: unknown) => {
        this.token = undefined;
        throw toApiError(e, 'GET', '/login');
      });
    return this.token;
  }

  /** One authenticated call; a 401 drops the token and logs in again once. */
  async call(method: HttpMethod, path: string, opts: RequestOptions = {}): Promise<unknown> {
    for (let attempt = 0; ; attempt++) {
      const pending = this.login();
      const token = await pending;
      try {
        const res = await this.http.request(method, `${this.base}${path}`, {
          ...opts,
          headers: { authorization: basic(this.o.username, token), ...opts.headers },
        });
        return res.body;
      } catch (e) {
        if (e instanceof OpenStackHttpError && e.status === 401 && attempt === 0) {
          if (this.token === pending) this.token = undefined;
          continue;
        }
        throw toApiError(e, method, path);
      }
    }
  }

  async system(): Promise<string> {
    const systems = parseBody(z.array(SystemSchema), await this.call('GET', '/types/System/instances'), 'systems');
    if (systems.length === 0) throw new Error('the ScaleIO gateway lists no system');
    return systems[0].id;
  }

  async sdcs(): Promise<ScaleIoSdc[]> {
    return parseBody(z.array(SdcSchema), await this.call('GET', '/types/Sdc/instances'), 'SDC list');
  }

  async volumes(): Promise<ScaleIoVolume[]> {
    return parseBody(z.array(VolumeSchema), await this.call('GET', '/types/Volume/instances'), 'volume list');
  }

  /** The volume, or undefined when the gateway says there is none. */
  async volume(id: string): Promise<ScaleIoVolume | undefined> {
    try {
      return parseBody(VolumeSchema, await this.call('GET', `/instances/Volume::${id}`), 'volume');
    } catch (e) {
      if (e instanceof ScaleIoApiError && e.notFound) return undefined;
      throw e;
    }
  }

  /** goscaleio FindVolumeID: POST …/queryIdByKey {name}; undefined when not found. */
  async volumeIdByName(name: string): Promise<string | undefined> {
    try {
      const body = await this.call('POST', '/types/Volume/instances/action/queryIdByKey', {
        body: { name },
        idempotent: true,
      });
      return parseBody(z.string().min(1), body, 'volume id');
    } catch (e) {
      if (e instanceof ScaleIoApiError && e.notFound) return undefined;
      throw e;
    }
  }

  async createVolume(req: {
    storagePoolId: string;
    name: string;
    sizeInKb: number;
    volumeType: string;
  }): Promise<string> {
    const body = await this.call('POST', '/types/Volume/instances', {
      idempotent: false, // a lost answer is recovered by name, not by sending again
      body: {
        storagePoolId: req.storagePoolId,
        name: req.name,
        volumeSizeInKb: String(req.sizeInKb),
        volumeType: req.volumeType,
      },
    });
    return parseBody(CreatedSchema, body, 'created volume').id;
  }

  /**
   * One snapshot (POST /instances/System::<id>/action/snapshotVolumes, goscaleio CreateSnapshotConsistencyGroup;
   * Cinder's snapshot_volume): answers the new volume's id. Not re-sent: a lost answer is found by name.
   */
  async snapshotVolume(
    systemId: string,
    req: { volumeId: string; snapshotName: string; accessModeLimit?: 'ReadOnly' | 'ReadWrite' },
  ): Promise<string> {
    const body = await this.call('POST', `/instances/System::${systemId}/action/snapshotVolumes`, {
      idempotent: false,
      body: {
        snapshotDefs: [{ volumeId: req.volumeId, snapshotName: req.snapshotName }],
        ...(req.accessModeLimit !== undefined ? { accessModeLimit: req.accessModeLimit } : {}),
      },
    });
    return parseBody(SnapshotVolumesRespSchema, body, 'snapshotVolumes answer').volumeIdList[0];
  }

  async action(volumeId: string, action: string, body: Record<string, string>): Promise<void> {
    await this.call('POST', `/instances/Volume::${volumeId}/action/${action}`, { body, idempotent: false });
  }
}

/** The gateway's error body as a ScaleIoApiError; other errors unchanged. */
export function toApiError(e: unknown, method: HttpMethod, path: string): unknown {
  if (!(e instanceof OpenStackHttpError)) return e;
  let parsed: z.infer<typeof ScaleIoErrorSchema> | undefined;
  try {
    const r = ScaleIoErrorSchema.safeParse(JSON.parse(e.serviceMessage));
    if (r.success) parsed = r.data;
  } catch {
    // not JSON (an HTML error page from a proxy): keep the text
  }
  return new ScaleIoApiError(e.status, parsed?.errorCode, parsed?.message ?? e.serviceMessage, method, path);
}
