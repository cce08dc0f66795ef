/** This instance's id from the EC2 instance metadata service, IMDSv2 (session token). */
import { StorageError } from '../BlockDeviceApi';

export const DEFAULT_IMDS_ENDPOINT = 'http://169.254.169.254';

export interface ImdsOptions {
  readonly endpoint?: string;
  /** Per request; IMDS answers in milliseconds or not at all (not on EC2). */
  readonly timeoutMs?: number;
  readonly fetch?: typeof globalThis.fetch;
}

export async function fetchInstanceIdFromImds(options: ImdsOptions = {}): Promise<string> {
  const endpoint = (options.endpoint ?? DEFAULT_IMDS_ENDPOINT).replace(/\/+$/, '');
  const doFetch = options.fetch ?? globalThis.fetch;
  const timeoutMs = options.timeoutMs ?? 2000;
  const fail = (why: string): StorageError =>
    new StorageError(
      'BACKEND_ERROR',
      `cannot learn this instance's id from the EC2 instance metadata service at ${endpoint} (${why}); set dataset.instance_id in agent.yml when not running on EC2`,
    );
  let token: string;
  try {
    const res = await doFetch(`${endpoint}/latest/api/token`, {
      method: 'PUT',
      headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '60' },
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!res.ok) throw fail(`token request answered HTTP ${res.status}`);
    token = (await res.text()).trim();
  } catch (e) {
    throw e instanceof StorageError ? e : fail((e as Error).message);
  }
  try {
    const res = await doFetch(`${endpoint}/latest/meta-data/instance-id`, {
      headers: { 'X-aws-ec2-metadata-token': token },
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!res.ok) throw fail(`instance-id request answered HTTP ${res.status}`);
    const id = (await res.text()).trim();
    if (!/^i-[0-9a-f]{8,17}$/.test(id)) throw fail(`not an instance id: ${JSON.stringify(id.slice(0, 40))}`);
    return id;
  } catch (e) {
    throw e instanceof StorageError ? e : fail((e as Error).message);
  }
}
