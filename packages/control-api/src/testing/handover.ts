/**
 * The lease hand-over over HTTP, for the file-store and etcd tests alike: a requester's client (one replica), the
 * holder's client (the same or another replica), and the holder's plugin played by the test (it lets go of the lease,
 * or declines, once it sees the request in GET /v1/configuration/leases).
 */
import { FlockerApiError, type FlockerClient, type Lease } from '@flocker/api';
import { releaseVersion } from '@flocker/metrics';
import type { Configuration, StoredLease } from '../configuration';
import { handoverStep, type Requester } from '../leaseHandover';
import { NODE_A, NODE_B, nodeReport } from './httpService';

export { NODE_A as HOLDER, NODE_B as REQUESTER };

/**
 * Both nodes known (they reported, as agents of this release: views show them the lease hand-over's members), a dataset
 * on the holder, and its lease taken with release_on_request.
 */
export async function idleVolume(holder: FlockerClient, name: string, promise = true): Promise<string> {
  await holder.reportNodeState(nodeReport(NODE_A, { version: releaseVersion() }));
  await holder.reportNodeState(nodeReport(NODE_B, { version: releaseVersion() }));
  const ds = await holder.createDataset({ primary: NODE_A, metadata: { name } });
  await holder.acquireLease({
    dataset_id: ds.dataset_id,
    node_uuid: NODE_A,
    expires: null,
    holder: 'docker',
    ...(promise ? { release_on_request: true } : {}),
  });
  return ds.dataset_id;
}

/** Polls (no fixed sleep) until the lease of `datasetId` as `client` reads it satisfies `check`. */
export async function leaseBecomes(
  client: FlockerClient,
  datasetId: string,
  check: (lease: Lease | undefined) => boolean,
  timeoutMs = 20_000,
): Promise<Lease | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const lease = (await client.listLeases()).find((l) => l.dataset_id === datasetId);
    if (check(lease)) return lease;
    if (Date.now() > deadline)
      throw new Error(`lease of ${datasetId} not as expected in time: ${JSON.stringify(lease)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The holder's plugin: once the request shows, lets go of its share ('release') or says it is in use ('decline'). */
export async function holderAnswers(
  holder: FlockerClient,
  datasetId: string,
  answer: 'release' | 'decline',
): Promise<Lease | undefined> {
  const seen = await leaseBecomes(holder, datasetId, (l) => l?.release_requested !== undefined);
  if (answer === 'release') await holder.releaseLease(datasetId, { holder: 'docker' });
  else await holder.declineReleaseRequest(datasetId);
  return seen;
}

/** The request's outcome and how long it took. */
export async function timed<T>(p: Promise<T>): Promise<{ value?: T; error?: FlockerApiError; ms: number }> {
  const t0 = Date.now();
  try {
    const value = await p;
    return { value, ms: Date.now() - t0 };
  } catch (err) {
    if (!(err instanceof FlockerApiError)) throw err;
    return { error: err, ms: Date.now() - t0 };
  }
}

/** Polls until `check` holds (listeners gone, …). */
export async function eventually(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * The lease handoverStep asks for ('ask'), of a holder that reported since this start; undefined otherwise (the
 * decision's earlier form, kept for the tests that state their cases with it).
 */
export function handoverCandidate(
  config: Configuration,
  datasetId: string,
  requester: Requester,
  now: number,
  isDead: (node: string) => boolean,
  canHear: (node: string) => boolean,
): StoredLease | undefined {
  const step = handoverStep(config, datasetId, requester, now, isDead, canHear, () => true);
  return step.do === 'ask' ? step.lease : undefined;
}
