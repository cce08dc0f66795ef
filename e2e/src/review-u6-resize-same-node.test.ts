/**
 * Review U6 (session 17, a new user on Kubernetes): an ext4 PVC expanded while its pod runs, on a
 * machine whose agents lack CAP_SYS_RESOURCE (this one). packages/csi-driver/README.md says the file
 * system then grows "at its next mount"; a user restarts the pod on the same node and expects the new
 * size. It never comes: the agent keeps its own mount of the dataset while the volume stays on that
 * node (unstage releases only the lease), so there is no next mount until the volume moves to another
 * node. The claim meanwhile reports the new capacity and VolumeResizeSuccessful.
 *
 * Failed before the agent's offline grow (session 17, RS): the pod recreated on the same node saw the old size. Now
 * the agent grows the file system offline once the pod's unstage released the lease (dataset-agent README, Growth).
 * Run: npx tsc -b e2e && npx jest --selectProjects e2e --runInBand e2e/dist/review-u6-resize-same-node.test.js
 */
import { waitFor } from './cluster/run';
import { K8sHarness } from './k8s-harness';

jest.setTimeout(900_000);

// Its own state dir (not review-u6-lease-lost-reason's): up.sh takes down a harness found in its dir, so two files
// sharing one, run at once, took each other's harness down; with their own dirs the second waits (one per machine).
const k8s = new K8sHarness('/tmp/flocker-k8s-u6-resize');
const kubectl = (args: string[], input?: string): Promise<string> => k8s.kubectl(args, input);

const claim = `
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: grow}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: flocker
  resources: {requests: {storage: 64Mi}}
`;
const pod = `
apiVersion: v1
kind: Pod
metadata: {name: grower}
spec:
  nodeName: node1
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: docker.io/library/busybox:1.35
    imagePullPolicy: Never
    command: ["/bin/sh", "-c", "exec sleep 100000"]
    volumeMounts: [{name: d, mountPath: /data}]
  volumes: [{name: d, persistentVolumeClaim: {claimName: grow}}]
`;

/** Size of the file system at /data in the pod (df, KiB). */
async function dfTotalKiB(): Promise<number> {
  const df = await kubectl(['exec', 'grower', '--', 'df', '-k', '/data']);
  return Number(df.trim().split('\n')[1]?.trim().split(/\s+/)[1]);
}

beforeAll(async () => {
  k8s.build();
  await k8s.up();
});

afterAll(async () => {
  await k8s.down().catch((e: unknown) => process.stdout.write(`${String(e)}\n`));
});

it('an ext4 PVC expanded while mounted has the new size once its pod is recreated on the same node', async () => {
  await k8s.apply(claim);
  await k8s.apply(pod);
  const first = await k8s.podRunning('grower', { node: 'node1' });
  expect(await dfTotalKiB()).toBeLessThan(64 * 1024);

  await kubectl([
    'patch',
    'pvc',
    'grow',
    '--type=merge',
    '-p',
    '{"spec":{"resources":{"requests":{"storage":"128Mi"}}}}',
  ]);
  await waitFor(
    'the claim at 128Mi',
    async () =>
      (await kubectl(['get', 'pvc', 'grow', '-o', 'jsonpath={.status.capacity.storage}'])) === '128Mi'
        ? true
        : undefined,
    { timeoutMs: 120_000, intervalMs: 500, context: () => k8s.logTails() },
  );

  // The user's "next mount": the pod deleted (the volume unpublished and unstaged) and started again.
  await kubectl(['delete', 'pod', 'grower', '--wait=true']);
  await k8s.apply(pod);
  await k8s.podRunning('grower', { node: 'node1', notUid: first.metadata.uid });
  // Got: still ~54 MiB (the agent's mount of the 64 MiB file system was never taken down).
  expect(await dfTotalKiB()).toBeGreaterThan(100 * 1024);
});
