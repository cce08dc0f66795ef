/**
 * s24 FAIL-C (as review T4's frozen replica for the dataset agent): one of three control replicas frozen (SIGSTOP: its
 * connections stay open, nothing answers) and first in the CSI controller's list. CreateVolume, through the driver's
 * own socket and client (startCsiDriver), must answer within the CSI sidecars' default timeout (10 s): with the
 * client's 30 s alone it waited 30 s on the frozen replica, and every controller call of the first 30 s timed out.
 */
import { join } from 'node:path';
import { FlockerClient } from '@flocker/api';
import { createCsiClient, startCsiDriver } from '@flocker/csi-driver';
import winston from 'winston';
import { useEtcdBed } from './testing/etcdBed';

jest.setTimeout(240_000);

/** external-provisioner's (and -resizer's, -snapshotter's) default --timeout. */
const SIDECAR_TIMEOUT_MS = 10_000;

const theBed = useEtcdBed('flk-s24-csi-frozen-');

it('a replica frozen first in the CSI controller’s list: CreateVolume answers within the sidecars’ 10 s', async () => {
  const bed = theBed();
  const { replicas } = await bed.startReplicasBehindHoles({
    prefix: `/s24-csi-frozen-${process.pid}`,
    etcdTimeout: 2,
    nodeTimeout: 10,
    leaseGrace: 2,
  });
  const urls = replicas.map((r) => r.url);
  const healthy = new FlockerClient({ baseUrl: urls[1]!, baseUrls: [urls[2]!], timeoutMs: 3_000 });
  // A node to be the volume's primary.
  bed.startAgent('a', [replicas[1]!.hostPort, replicas[2]!.hostPort]);
  await bed.registered('a', healthy);
  const endpoint = join(bed.dir, 'csi-controller.sock');
  const csi = await startCsiDriver({
    endpoint,
    mode: 'controller',
    controlUrl: urls.join(','),
    defaultSize: 64 * 1024 * 1024,
    stageTimeoutMs: 100_000,
    logger: winston.createLogger({ silent: true }),
  });
  const client = createCsiClient(endpoint);
  try {
    replicas[0]!.proc!.kill('SIGSTOP');
    const started = Date.now();
    const answer = await client.controller.CreateVolume!({
      name: 'pvc-frozen-replica',
      volume_capabilities: [{ mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } }],
    });
    const took = Date.now() - started;
    expect(answer).toMatchObject({ volume: { volume_id: expect.any(String) as string } });
    expect(took).toBeLessThan(SIDECAR_TIMEOUT_MS);
    // Made on the replicas that answer.
    const id = (answer as { volume: { volume_id: string } }).volume.volume_id;
    expect((await healthy.listDatasets()).some((d) => d.dataset_id === id)).toBe(true);
  } finally {
    replicas[0]!.proc!.kill('SIGCONT');
    client.close();
    await csi.close();
  }
});
