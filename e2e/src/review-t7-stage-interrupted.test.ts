/**
 * Review T7 (session 20, tester TK): a Kubernetes operator's faults on the Flocker CSI driver.
 *
 * The node plugin dies in the middle of NodeStageVolume (after it took the node's `csi` lease share
 * and moved the dataset here, before it answered) and the pod is meanwhile rescheduled to the other
 * node. The kubelet saw the stage fail (`Unavailable`, then `connection refused` / driver not
 * registered: a final error, so it marks the device unmounted and never calls NodeUnstageVolume).
 * The restarted plugin adopts the lease share it finds at start as "staged here" and keeps it for
 * ever: the pod on the other node stays ContainerCreating with `FAILED_PRECONDITION … it holds the
 * lease; used there by csi: unstage it there first`, though nothing runs there. Worse, the
 * operator's `flocker leases release --force` is undone within a second by the plugin's lease
 * recovery ("took the lease again … (it was released while the dataset agent was down)"; the agent
 * never was), so the only way out was to stop the node plugin, release the lease and start it again.
 *
 * Fixed (CsiDriver.releaseUnused, recoverLeases): a plugin lets go at start of a share no pod on its node
 * uses, and takes a released share back only for a volume a pod on its node uses (test 2), saying so.
 *
 * Reproduction (root, warm /var/cache/flocker):
 *   npx tsc -b e2e && npx jest --selectProjects e2e --runInBand e2e/dist/review-t7-stage-interrupted.test.js
 * Uses its own harness state dir; the harness ports are fixed, so no other scripts/k8s harness may run.
 */
import { join } from 'node:path';
import { createCsiClient } from '@flocker/csi-driver';
import { waitFor } from './cluster/run';
import { K8sHarness } from './k8s-harness';
import { harnessProcesses, manifests, pod, pvc } from './testing/k8sFaults';

jest.setTimeout(3_600_000);

const DIR = '/tmp/flocker-k8s-t7-stage';
const k8s = new K8sHarness(DIR);
const kubectl = (args: string[], input?: string): Promise<string> => k8s.kubectl(args, input);
const { bash: harnessBash, pidOf, csiLog } = harnessProcesses(DIR);

/** Starts node i's CSI node plugin as up.sh does. */
const startNodePlugin = (i: number): Promise<string> =>
  harnessBash(
    `D="$K/n${i}"; start flocker-csi-n${i} "$(command -v node)" "$REPO_ROOT/packages/csi-driver/dist/main.js" --mode node ` +
      `--endpoint "unix://$D/csi.sock" --control-url "http://127.0.0.1:$FLOCKER_PORT" --state-dir "$D/flocker/state" ` +
      `--kubelet-registration-dir "$D/kubelet/plugins_registry" --stage-timeout 60`,
  );

beforeAll(async () => {
  k8s.build();
  process.stdout.write(await k8s.up());
});

afterAll(async () => {
  await k8s.down().catch((e: unknown) => process.stdout.write(`${String(e)}\n`));
});

describe('review T7: the CSI node plugin killed in the middle of NodeStageVolume, the pod rescheduled meanwhile', () => {
  let datasetId = '';
  let node2Uuid = '';

  it('the pod, sent back to node1 while node2 plugin was down mid-stage, runs there with its data once that plugin is back', async () => {
    // Start on node1.
    await kubectl(['cordon', 'node2']);
    await kubectl(['apply', '-f', '-'], manifests);
    const first = await k8s.podRunning(pod, { node: 'node1' });
    const pvName = (await kubectl(['get', 'pvc', pvc, '-o', 'jsonpath={.spec.volumeName}'])).trim();
    datasetId = (await kubectl(['get', 'pv', pvName, '-o', 'jsonpath={.spec.csi.volumeHandle}'])).trim();
    node2Uuid = (await k8s.csiNodeIds())['node2'] ?? '';

    // Rescheduled to node2; its node plugin is SIGKILLed once it has taken the lease and moved the dataset.
    await kubectl(['uncordon', 'node2']);
    await kubectl(['cordon', 'node1']);
    const logBefore = csiLog(2).length;
    await kubectl(['delete', 'pod', pod, '--wait=false']);
    await waitFor(
      'node2 plugin moving the volume to node2 (NodeStageVolume in flight)',
      () => (csiLog(2).slice(logBefore).includes('moving volume to this node') ? true : undefined),
      { timeoutMs: 120_000, intervalMs: 20, context: () => k8s.logTails() },
    );
    process.kill(pidOf('flocker-csi-n2'), 'SIGKILL');
    const onNode2 = await waitFor(
      `pod ${pod} scheduled on node2`,
      async () => {
        const p = await k8s.pod(pod);
        return p !== undefined && p.metadata.uid !== first.metadata.uid && p.spec.nodeName === 'node2' ? p : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 200 },
    );

    // The operator sends it back to node1 (node2 suspect), then node2's plugin is restarted.
    await kubectl(['cordon', 'node2']);
    await kubectl(['uncordon', 'node1']);
    await kubectl(['delete', 'pod', pod, '--wait=false']);
    await waitFor(
      `pod ${pod} gone from node2`,
      async () => ((await k8s.pod(pod))?.metadata.uid !== onNode2.metadata.uid ? true : undefined),
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    await startNodePlugin(2);

    // Nothing runs on node2, so the restarted plugin lets go of the lease share of the interrupted stage and the
    // pod runs on node1 (kubelet retry backoff up to ~2 min included). Before the fix node2 kept the lease for ever.
    await k8s.podRunning(pod, { node: 'node1', timeoutMs: 300_000 });
    expect(await kubectl(['exec', pod, '--', 'cat', '/data/log'])).toMatch(
      /^started on node1\n(.*\n)*started on node1\n$/,
    );
    expect(csiLog(2)).toContain(
      'released the lease of a volume no pod on this node uses, held since before this plugin started',
    );
  });

  it("the operator's forced release of the lease of a volume a pod uses on node1 is taken back there, saying so truthfully", async () => {
    const node1Uuid = (await k8s.csiNodeIds())['node1'] ?? '';
    await waitFor(
      'node1 holding the lease for csi',
      async () =>
        (await k8s.flocker.listLeases()).some(
          (l) => l.dataset_id === datasetId && l.node_uuid === node1Uuid && l.holders?.includes('csi') === true,
        )
          ? true
          : undefined,
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    const logBefore = csiLog(1).length;
    await k8s.flocker.releaseLease(datasetId);
    await waitFor(
      'node1 taking the lease back (its pod uses the volume)',
      async () =>
        (await k8s.flocker.listLeases()).some((l) => l.dataset_id === datasetId && l.node_uuid === node1Uuid)
          ? true
          : undefined,
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    // Truthfully: the agent was never down, so the line names both ways a lease goes (before the fix it said only
    // "it was released while the dataset agent was down").
    expect(csiLog(1).slice(logBefore)).toContain(
      'took the lease again for a volume a pod on this node uses: its lease was released while the volume was published here (by the control service while the dataset agent was down, or by flocker leases release --force)',
    );
  });

  it("a lease share the operator force-released on node2 (nothing of the pod runs there) is not taken again by node2's plugin", async () => {
    // No pod wants the volume any more (node1's stage retries would otherwise race node2 for the lease).
    await kubectl(['scale', 'statefulset', 'w', '--replicas=0']);
    await waitFor(`pod ${pod} gone`, async () => ((await k8s.pod(pod)) === undefined ? true : undefined), {
      timeoutMs: 120_000,
      intervalMs: 500,
    });
    const leases = async () => (await k8s.flocker.listLeases()).filter((l) => l.dataset_id === datasetId);
    await waitFor(
      'node1 letting go of the lease (unstaged)',
      async () => ((await leases()).length === 0 ? true : undefined),
      {
        timeoutMs: 120_000,
        intervalMs: 500,
      },
    );
    // node2's plugin stages the volume with no pod there (a NodeStageVolume on its socket, as a kubelet would
    // before a publish that never comes): its csi share holds the lease, nothing of a pod uses it.
    const csi = createCsiClient(join(DIR, 'n2', 'csi.sock'));
    try {
      await csi.node.NodeStageVolume!({
        volume_id: datasetId,
        staging_target_path: join(DIR, 'n2', 'review-t7-staging'),
        volume_capability: { mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } },
      });
    } finally {
      csi.close();
    }
    expect((await leases()).map((l) => [l.node_uuid, l.holders])).toEqual([[node2Uuid, ['csi']]]);
    // Forced release within the plugin's 30 s grace for an unused share (well before it would let go itself).
    const logBefore = csiLog(2).length;
    await k8s.flocker.releaseLease(datasetId);
    await waitFor(
      "node2's plugin seeing the release and leaving it released",
      () =>
        csiLog(2)
          .slice(logBefore)
          .includes('the lease of a volume staged here was released while no pod on this node used it: left released')
          ? true
          : undefined,
      { timeoutMs: 60_000, intervalMs: 200, context: () => k8s.logTails() },
    );
    expect(await leases()).toEqual([]);
    expect(csiLog(2).slice(logBefore)).not.toContain('took the lease again');
  });
});
