/**
 * Review T7 (session 20, tester TK): a Kubernetes operator's faults on the Flocker CSI driver.
 *
 * The kubelet crashes (SIGKILL) while NodeStageVolume is in flight on its node; the node plugin
 * finishes the stage (the node's `csi` lease share, the agent's mount). Meanwhile the operator
 * force-deletes the ContainerCreating pod and it is rescheduled to the other node; the kubelet is
 * then restarted. The restarted kubelet knows nothing of the volume (it reconstructs volumes from
 * pod directories; the pod never got one) and never calls NodeUnstageVolume, so the node plugin
 * keeps the lease for ever and the rescheduled pod stays ContainerCreating:
 * `FAILED_PRECONDITION … it holds the lease; used there by csi: unstage it there first`.
 * With attachRequired: false nothing on the controller side (no VolumeAttachment, no
 * ControllerUnpublishVolume) ever let the old node's claim go.
 *
 * Fixed (CsiDriver.releaseUnused): the node plugin releases its share of a volume no pod on its node uses
 * once --unused-release-after (30 s by default; 10 s here, UNUSED_RELEASE_S) is over.
 *
 * Reproduction (root, warm /var/cache/flocker):
 *   npx tsc -b e2e && npx jest --selectProjects e2e --runInBand e2e/dist/review-t7-kubelet-crash-stage.test.js
 * Uses its own harness state dir; the harness ports are fixed, so no other scripts/k8s harness may run.
 */
import { waitFor } from './cluster/run';
import { K8sHarness } from './k8s-harness';
import { harnessProcesses, manifests, pod } from './testing/k8sFaults';

jest.setTimeout(3_600_000);

const DIR = '/tmp/flocker-k8s-t7-kubelet';
const k8s = new K8sHarness(DIR);
const kubectl = (args: string[], input?: string): Promise<string> => k8s.kubectl(args, input);
const { bash: harnessBash, pidOf, csiLog } = harnessProcesses(DIR);

/** Starts node i's kubelet as up.sh does. */
const startKubelet = (i: number): Promise<string> =>
  harnessBash(
    `KBIN="$(cut -d" " -f1 "$K/bins")"; D="$K/n${i}"; start kubelet-n${i} "$KBIN/kubelet" --config="$D/kubelet.yaml" ` +
      `--kubeconfig="$PKI/kubelet-node${i}.kubeconfig" --root-dir="$D/kubelet" --cert-dir="$D/kubelet/pki" ` +
      `--hostname-override=node${i} --node-ip="$(node_ip ${i})" --v=1`,
  );

/**
 * The node plugins' grace for a share no pod uses: shorter than the default 30 s, which the rescheduled pod sat out
 * in full and then the kubelet's retry backoff doubled (~60 s of the test). Still twice the plugin's minimum and
 * far longer than a kubelet takes from NodeStage to NodePublish, so node1's own stages are not let go meanwhile.
 */
const UNUSED_RELEASE_S = 10;

beforeAll(async () => {
  k8s.build();
  process.stdout.write(await k8s.up({ unusedReleaseAfterS: UNUSED_RELEASE_S }));
});

afterAll(async () => {
  await k8s.down().catch((e: unknown) => process.stdout.write(`${String(e)}\n`));
});

describe('review T7: the kubelet killed in the middle of NodeStageVolume, the pod force-deleted and rescheduled meanwhile', () => {
  it('the pod runs on node1 with its data once node2 kubelet is back', async () => {
    // Start on node1.
    await kubectl(['cordon', 'node2']);
    await kubectl(['apply', '-f', '-'], manifests);
    const first = await k8s.podRunning(pod, { node: 'node1' });

    // Rescheduled to node2; its kubelet is SIGKILLed once the node plugin has taken the lease and moved the dataset.
    await kubectl(['uncordon', 'node2']);
    await kubectl(['cordon', 'node1']);
    const logBefore = csiLog(2).length;
    await kubectl(['delete', 'pod', pod, '--wait=false']);
    await waitFor(
      'node2 plugin moving the volume to node2 (NodeStageVolume in flight)',
      () => (csiLog(2).slice(logBefore).includes('moving volume to this node') ? true : undefined),
      { timeoutMs: 120_000, intervalMs: 20, context: () => k8s.logTails() },
    );
    process.kill(pidOf('kubelet-n2'), 'SIGKILL');
    const onNode2 = await waitFor(
      `pod ${pod} scheduled on node2`,
      async () => {
        const p = await k8s.pod(pod);
        return p !== undefined && p.metadata.uid !== first.metadata.uid && p.spec.nodeName === 'node2' ? p : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 200 },
    );

    // The operator force-deletes the stuck pod (its kubelet is down) and it goes to node1; node2's kubelet comes back.
    await kubectl(['cordon', 'node2']);
    await kubectl(['uncordon', 'node1']);
    await kubectl(['delete', 'pod', pod, '--grace-period=0', '--force']);
    await waitFor(
      `pod ${pod} gone from node2`,
      async () => ((await k8s.pod(pod))?.metadata.uid !== onNode2.metadata.uid ? true : undefined),
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    await startKubelet(2);

    // node2's plugin releases the lease share no pod there uses once its grace period is over, and the pod runs on
    // node1 (kubelet retry backoff up to ~2 min included). Before the fix node2 kept the lease for ever.
    await k8s.podRunning(pod, { node: 'node1', timeoutMs: 300_000 });
    expect(await kubectl(['exec', pod, '--', 'cat', '/data/log'])).toMatch(
      /^started on node1\n(.*\n)*started on node1\n$/,
    );
    expect(csiLog(2)).toContain(
      `released the lease of a volume no pod on this node has used for ${UNUSED_RELEASE_S} s`,
    );
  });
});
