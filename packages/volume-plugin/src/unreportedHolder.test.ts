/**
 * Review s28 G5: right after a control-service restart, a lease whose holder has not reported yet is refused after the
 * control service's report wait (409 LEASE_HELD "... has not reported since the control service restarted ...") with a
 * Retry-After: a retry works once the holder's agent reports (its next heartbeat). The Mount asks again until its own
 * deadline instead of failing the `docker run` at once; a refusal without the mark (a container uses the volume
 * there) still fails at once, with the control service's reason. Real control service in this process, fake agents; the
 * refusals come from a client wrapper (the restart's report wait is control-api's leaseHandover.restart.test).
 */
import { Writable } from 'node:stream';
import { FlockerApiError, type FlockerClient } from '@flocker/api';
import * as winston from 'winston';
import type { ControlClient } from './FlockerVolumeBackend';
import { BackendTestBed, forwardingClient, HOST_A, HOST_B, NODE_A, NODE_B } from './testing';

let bed: BackendTestBed;
let client: FlockerClient;

beforeEach(async () => {
  bed = await BackendTestBed.start('flocker-unreported-holder-', [HOST_A, HOST_B]);
  client = bed.client;
});

afterEach(async () => {
  await bed.close();
});

const UNREPORTED =
  `The dataset is already leased by node ${NODE_A} (held there by docker, kept while no container uses it). ` +
  `Node ${NODE_A} (host-a) has not reported since the control service restarted, so its Docker plugin cannot be ` +
  'asked to let go of the lease yet (waited 5 s). Retry once that node reports again.';

/** A volume on A, its lease held there idle by A's plugin (release_on_request), as before the restart. */
async function idleOnA(name: string): Promise<string> {
  const id = (await client.createDataset({ primary: NODE_A, metadata: { name }, maximum_size: 1 << 30 })).dataset_id;
  await client.acquireLease({
    dataset_id: id,
    node_uuid: NODE_A,
    expires: null,
    holder: 'docker',
    release_on_request: true,
  });
  return id;
}

/**
 * The bed's client, its lease POSTs refused `refusals` times with `refusal` first (the holder unreported), then let
 * through once A's lease was let go of (A's agent reported, its plugin was asked and let go).
 */
function refusingFirst(
  id: string,
  refusals: number,
  refusal: () => FlockerApiError,
): { readonly client: ControlClient; readonly asked: () => number } {
  let asked = 0;
  return {
    asked: () => asked,
    client: forwardingClient(client, {
      acquireLease: async (...a) => {
        asked++;
        // An answer over the network (a turn of the event loop), as the real call's.
        await new Promise((r) => setImmediate(r));
        if (asked <= refusals) throw refusal();
        if (asked === refusals + 1) await client.releaseLease(id, { holder: 'docker' });
        return client.acquireLease(...a);
      },
    }),
  };
}

it('a refusal marked retryable (holder not reported since a restart) is asked again until it works', async () => {
  const id = await idleOnA('vol1');
  // Each refusal says the time it waited (so each text differs): logged once all the same (review s29 R1 F9).
  let n = 0;
  const refusing = refusingFirst(
    id,
    3,
    () => new FlockerApiError(409, 'LEASE_HELD', UNREPORTED.replace('5 s', `5.00${++n} s`), undefined, 100),
  );
  const lines: string[] = [];
  const logger = winston.createLogger({
    transports: [
      new winston.transports.Stream({
        stream: new Writable({
          write: (chunk: Buffer, _enc, done) => {
            lines.push(chunk.toString());
            done();
          },
        }),
      }),
    ],
  });
  const b = await bed.backend(NODE_B, { client: refusing.client, mountTimeoutMs: 20_000, logger });
  await expect(b.mount({ Name: 'vol1', ID: 'c1' })).resolves.toEqual({ Mountpoint: `/flocker-b/${id}` });
  expect(refusing.asked()).toBe(4);
  expect(lines.filter((l) => l.includes('the control service asks to retry the lease later'))).toHaveLength(1);
  expect(lines.filter((l) => l.includes('took the lease after asking again'))).toHaveLength(1);
  expect(await client.listLeases()).toEqual([expect.objectContaining({ dataset_id: id, node_uuid: NODE_B })]);
});

it('never reported within the Mount deadline: MOUNT_TIMEOUT with the control service refusal', async () => {
  await idleOnA('vol2');
  const refusing = refusingFirst(
    '',
    Infinity,
    () => new FlockerApiError(409, 'LEASE_HELD', UNREPORTED, undefined, 100),
  );
  const b = await bed.backend(NODE_B, { client: refusing.client, mountTimeoutMs: 1_500 });
  const t = Date.now();
  const err = await b.mount({ Name: 'vol2', ID: 'c1' }).catch((e: unknown) => e);
  expect(err).toMatchObject({ code: 'MOUNT_TIMEOUT', message: expect.stringContaining('has not reported since') });
  expect(Date.now() - t).toBeGreaterThanOrEqual(1_400);
  expect(Date.now() - t).toBeLessThan(5_000);
  // Paused between asks (Retry-After: 100 ms here), not spinning.
  expect(refusing.asked()).toBeGreaterThan(2);
  expect(refusing.asked()).toBeLessThanOrEqual(16);
});

it('a refusal without the mark (a container there uses it) fails at once, with the control service reason', async () => {
  await idleOnA('vol3');
  const declined =
    `The dataset is already leased by node ${NODE_A} (held there by docker, kept while no container uses it). ` +
    "Its holder's Docker plugin declined to let go of it: a container on host-a uses it.";
  const refusing = refusingFirst('', Infinity, () => new FlockerApiError(409, 'LEASE_HELD', declined));
  const b = await bed.backend(NODE_B, { client: refusing.client, mountTimeoutMs: 20_000 });
  const t = Date.now();
  const err = await b.mount({ Name: 'vol3', ID: 'c1' }).catch((e: unknown) => e);
  expect(err).toMatchObject({ code: 'VOLUME_IN_USE', message: expect.stringContaining('declined to let go of it') });
  expect(Date.now() - t).toBeLessThan(3_000);
  expect(refusing.asked()).toBe(1);
});
