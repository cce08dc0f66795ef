/**
 * End to end: Flocker as the storage of a real Kubernetes (issue 19). scripts/k8s builds Kubernetes
 * v1.35 and the controller-side CSI sidecars from the Go module proxy (cached by version outside the
 * clone: the first run on a machine takes ~40 min, later runs none) and starts a control plane,
 * two kubelets (node1, node2) with their own containerd, a Flocker control service and beside each
 * kubelet a dataset agent and `flocker-csi --mode node` registering itself with that kubelet; the
 * controller plugin runs with csi-provisioner, csi-resizer and csi-snapshotter (snapshot-controller
 * beside). StorageClass and VolumeSnapshotClass `flocker`.
 * Scenarios: a StatefulSet's pod writes to its PVC; the PVC is expanded while mounted; the pod is
 * rescheduled to the other node (the first cordoned) and finds its data; the node it then runs on
 * is powered off and, after the pod is force-deleted, it runs again on the other node with its
 * data; a VolumeSnapshot of the PVC (csi-snapshotter, snapshot-controller) is a Flocker snapshot,
 * a PVC restored from it holds the data as of the snapshot and a PVC cloned from the PVC the data
 * as of the clone; deleting the PVC deletes the dataset; down.sh leaves the machine as it found it.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import type { DatasetConfiguration } from '@flocker/api';
import { z } from 'zod';
import { join } from 'node:path';
import { waitFor } from './cluster/run';
import { DockerBesideAgent } from './docker';
import { DRIVER, K8sHarness } from './k8s-harness';
import { TOPOLOGY_ZONE_KEY } from '@flocker/csi-driver';

// The cold build (Kubernetes + sidecars from source) runs inside beforeAll on a fresh machine.
jest.setTimeout(3_600_000);

const DIR = '/tmp/flocker-k8s-e2e';
const k8s = new K8sHarness(DIR);
const kubectl = (args: string[], input?: string): Promise<string> => k8s.kubectl(args, input);
let before: HostState;

/** What down.sh must put back: sysctls the kubelet and CNI change, iptables chains, links, mounts. */
interface HostState {
  sysctls: string;
  kubeChains: string[];
  links: string[];
  mounts: number;
}
function hostState(): HostState {
  const sysctls = execFileSync(
    'sysctl',
    ['-n', 'vm.overcommit_memory', 'kernel.panic', 'kernel.panic_on_oops', 'net.ipv4.ip_forward'],
    { encoding: 'utf8' },
  );
  const rules = execFileSync('iptables', ['-S'], { encoding: 'utf8' });
  return {
    sysctls: sysctls.trim(),
    kubeChains: [...new Set(rules.match(/KUBE-[A-Z-]+/g) ?? [])].sort(),
    links: readdirSync('/sys/class/net').filter((l) => l.startsWith('flk8s')),
    mounts: readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .filter((l) => l.includes(` ${DIR}/`)).length,
  };
}

async function dataset(id: string): Promise<DatasetConfiguration | undefined> {
  return (await k8s.flocker.listDatasets()).find((d) => d.dataset_id === id && !d.deleted);
}

/** Size of the file system at /data in the pod (df, KiB). */
async function dfTotalKiB(): Promise<number> {
  const df = await kubectl(['exec', podOf, '--', 'df', '-k', '/data']);
  return Number(df.trim().split('\n')[1]?.trim().split(/\s+/)[1]);
}

const otherNode = (n: string | undefined): string => (n === 'node1' ? 'node2' : 'node1');
const podOf = 'db-0';
const pvcName = 'data-db-0';

const manifests = `
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: ${pvcName}}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: flocker
  resources: {requests: {storage: 64Mi}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 1
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: 1
      containers:
      - name: db
        image: docker.io/library/busybox:1.35
        imagePullPolicy: Never
        env: [{name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}]
        command: ["/bin/sh", "-c", "[ -f /data/first ] || echo \\"written on $NODE\\" > /data/first; echo \\"started on $NODE\\" >> /data/log; sync; exec sleep 100000"]
        volumeMounts: [{name: data, mountPath: /data}]
      volumes: [{name: data, persistentVolumeClaim: {claimName: ${pvcName}}}]
`;

beforeAll(async () => {
  before = hostState();
  // Warm: the cached binaries at once. Cold: built here (~35 min), announced on stderr.
  const ms = k8s.build();
  process.stdout.write(`k8s binaries ready in ${(ms / 1000).toFixed(1)} s\n`);
  process.stdout.write(await k8s.up());
});

afterAll(async () => {
  await k8s.down().catch((e: unknown) => process.stdout.write(`${String(e)}\n`));
});

describe('Flocker CSI on a real Kubernetes (two kubelets)', () => {
  let volumeId = '';
  let firstNode = '';

  it('each node plugin registered itself with its kubelet, with the Flocker UUID of the agent beside it', async () => {
    const ids = await k8s.csiNodeIds();
    expect(ids).toEqual({ node1: k8s.agentNodeUuid(1), node2: k8s.agentNodeUuid(2) });
    const nodes = (await k8s.flocker.listNodes()).map((n) => n.uuid).sort();
    expect(nodes).toEqual([k8s.agentNodeUuid(1), k8s.agentNodeUuid(2)].sort());
  });

  it('a StatefulSet pod with a PVC on the flocker StorageClass writes data; the PV is a Flocker dataset on the pod node', async () => {
    await kubectl(['apply', '-f', '-'], manifests);
    const pod = await k8s.podRunning(podOf);
    firstNode = pod.spec.nodeName ?? '';
    const pv = z
      .object({ spec: z.object({ volumeName: z.string() }), status: z.object({ phase: z.string() }) })
      .parse(JSON.parse(await kubectl(['get', 'pvc', pvcName, '-o', 'json'])));
    expect(pv.status.phase).toBe('Bound');
    const csi = z
      .object({ spec: z.object({ csi: z.object({ driver: z.string(), volumeHandle: z.string() }) }) })
      .parse(JSON.parse(await kubectl(['get', 'pv', pv.spec.volumeName, '-o', 'json'])));
    expect(csi.spec.csi.driver).toBe(DRIVER);
    volumeId = csi.spec.csi.volumeHandle;
    // The same dataset, seen from the Flocker API: named after the PV, 64 MiB, primary on the pod's node.
    const ds = await dataset(volumeId);
    expect(ds?.metadata['name']).toBe(pv.spec.volumeName);
    expect(ds?.maximum_size).toBe(64 * 1024 * 1024);
    expect(ds?.primary).toBe((await k8s.csiNodeIds())[firstNode]);
    expect(await kubectl(['exec', podOf, '--', 'cat', '/data/first'])).toBe(`written on ${firstNode}\n`);
    const totalKiB = await dfTotalKiB();
    expect(totalKiB).toBeGreaterThan(40 * 1024);
    expect(totalKiB).toBeLessThanOrEqual(64 * 1024);
  });

  it("topology: each node and its CSINode carry the storage zone (the shared pool's id); the PV's nodeAffinity requires it", async () => {
    // Both agents use one loopback pool: one zone, reported by each.
    const zones = new Set((await k8s.flocker.listNodes()).map((n) => n.zone));
    expect(zones.size).toBe(1);
    const zone = [...zones][0];
    expect(zone).toMatch(/^[0-9a-f-]{36}$/);
    const csiNodes = z
      .object({
        items: z.array(
          z.object({
            metadata: z.object({ name: z.string() }),
            spec: z.object({
              drivers: z.array(z.object({ name: z.string(), topologyKeys: z.array(z.string()).nullish() })).nullish(),
            }),
          }),
        ),
      })
      .parse(JSON.parse(await kubectl(['get', 'csinode', '-o', 'json'])));
    for (const n of csiNodes.items) {
      expect(n.spec.drivers?.find((d) => d.name === DRIVER)?.topologyKeys).toEqual([TOPOLOGY_ZONE_KEY]);
      const label = await kubectl([
        'get',
        'node',
        n.metadata.name,
        '-o',
        `jsonpath={.metadata.labels.${TOPOLOGY_ZONE_KEY.replace(/\./g, '\\.')}}`,
      ]);
      expect(label).toBe(zone);
    }
    const pvName = (await kubectl(['get', 'pvc', pvcName, '-o', 'jsonpath={.spec.volumeName}'])).trim();
    const affinity = z
      .object({
        spec: z.object({
          nodeAffinity: z.object({
            required: z.object({
              nodeSelectorTerms: z.array(
                z.object({
                  matchExpressions: z.array(
                    z.object({ key: z.string(), operator: z.string(), values: z.array(z.string()) }),
                  ),
                }),
              ),
            }),
          }),
        }),
      })
      .parse(JSON.parse(await kubectl(['get', 'pv', pvName, '-o', 'json'])));
    expect(affinity.spec.nodeAffinity.required.nodeSelectorTerms).toEqual([
      { matchExpressions: [{ key: TOPOLOGY_ZONE_KEY, operator: 'In', values: [zone] }] },
    ]);
  });

  it('the PVC expanded while mounted: csi-resizer grows the dataset; the claim reports 128Mi (the file system grows at its next mount here)', async () => {
    await kubectl([
      'patch',
      'pvc',
      pvcName,
      '--type=merge',
      '-p',
      '{"spec":{"resources":{"requests":{"storage":"128Mi"}}}}',
    ]);
    await waitFor(
      'the claim at 128Mi',
      async () =>
        (await kubectl(['get', 'pvc', pvcName, '-o', 'jsonpath={.status.capacity.storage}'])) === '128Mi'
          ? true
          : undefined,
      { timeoutMs: 120_000, intervalMs: 500, context: () => k8s.logTails() },
    );
    expect((await dataset(volumeId))?.maximum_size).toBe(128 * 1024 * 1024);
    // Online growth needs CAP_SYS_RESOURCE, which this machine withholds: the agent grows the
    // file system when it next mounts it (checked after the move below).
  });

  it('the pod deleted and its node cordoned: it is rescheduled to the other node and the volume follows with the data', async () => {
    const old = await k8s.pod(podOf);
    const target = otherNode(firstNode);
    await kubectl(['cordon', firstNode]);
    try {
      await kubectl(['delete', 'pod', podOf, '--wait=false']);
      await k8s.podRunning(podOf, { notUid: old?.metadata.uid, node: target });
    } finally {
      await kubectl(['uncordon', firstNode]);
    }
    expect(await kubectl(['exec', podOf, '--', 'cat', '/data/first'])).toBe(`written on ${firstNode}\n`);
    expect(await kubectl(['exec', podOf, '--', 'cat', '/data/log'])).toBe(
      `started on ${firstNode}\nstarted on ${target}\n`,
    );
    // Mounted afresh on this node: the file system has grown to the expanded size.
    expect(await dfTotalKiB()).toBeGreaterThan(100 * 1024);
    expect((await dataset(volumeId))?.primary).toBe((await k8s.csiNodeIds())[target]);
    // The first node let go of it: no lease of that node, nothing of it mounted there.
    const leases = await k8s.flocker.listLeases();
    expect(leases.filter((l) => l.dataset_id === volumeId).map((l) => l.node_uuid)).toEqual([
      (await k8s.csiNodeIds())[target],
    ]);
  });

  it('its node powered off while the pod uses the volume: after a force delete the pod runs on the other node with its data', async () => {
    const old = await k8s.pod(podOf);
    const dead = old?.spec.nodeName ?? '';
    const survivor = otherNode(dead);
    const ids = await k8s.csiNodeIds();
    await k8s.script('poweroff.sh', [dead.replace('node', '')], 60_000);
    await waitFor(
      `${dead} NotReady`,
      async () =>
        (await kubectl(['get', 'node', dead, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'])) !==
          'True' || undefined,
      { timeoutMs: 90_000, intervalMs: 1_000 },
    );
    await kubectl(['delete', 'pod', podOf, '--grace-period=0', '--force']);
    await k8s.podRunning(podOf, { notUid: old?.metadata.uid, node: survivor, timeoutMs: 240_000 });
    expect(await kubectl(['exec', podOf, '--', 'cat', '/data/log'])).toContain(
      `started on ${dead}\nstarted on ${survivor}\n`,
    );
    expect((await dataset(volumeId))?.primary).toBe(ids[survivor]);
  });

  it('one cluster, two orchestrators: Docker on the pod node lists the PV as a Flocker volume and, once the pod is gone, runs a container with its data; the pod then sees what Docker wrote', async () => {
    const node = (await k8s.pod(podOf))?.spec.nodeName ?? '';
    const pvName = (await dataset(volumeId))?.metadata['name'] ?? '';
    expect(pvName).toMatch(/^pvc-/);
    const docker = await DockerBesideAgent.start(
      `flocker-k8s-${process.pid}`,
      `/tmp/fk8d-${process.pid}`,
      join(DIR, `n${node.replace('node', '')}`, 'flocker', 'agent.yml'),
    );
    try {
      const listed = (await docker.docker(['volume', 'ls', '--format', '{{.Driver}} {{.Name}}'])).stdout;
      expect(listed.split('\n')).toContain(`${docker.driver} ${pvName}`);
      await kubectl(['scale', 'statefulset', 'db', '--replicas=0']);
      await waitFor(`pod ${podOf} gone`, async () => ((await k8s.pod(podOf)) === undefined ? true : undefined), {
        timeoutMs: 120_000,
        intervalMs: 500,
      });
      const seen = await docker.runWith(pvName, 'cat /data/first; echo "written by docker" >> /data/log; sync');
      expect(seen).toMatch(/^written on node\d\n$/);
      await kubectl(['scale', 'statefulset', 'db', '--replicas=1']);
      await k8s.podRunning(podOf, { node, timeoutMs: 120_000 });
      expect(await kubectl(['exec', podOf, '--', 'cat', '/data/log'])).toContain('written by docker\n');
    } catch (err) {
      process.stdout.write(docker.logs());
      throw err;
    } finally {
      await docker.close();
    }
  });

  it('a VolumeSnapshot of the PVC is ready and a Flocker snapshot; a PVC restored from it holds the data as of the snapshot; a PVC cloned from the PVC holds the data as of the clone', async () => {
    const exec = (pod: string, cmd: string) => kubectl(['exec', pod, '--', 'sh', '-c', cmd]);
    await exec(podOf, 'echo before-snapshot > /data/marker; sync');
    await kubectl(
      ['apply', '-f', '-'],
      `apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata: {name: db-snap}
spec: {volumeSnapshotClassName: flocker, source: {persistentVolumeClaimName: ${pvcName}}}
`,
    );
    const snap = await waitFor(
      'the VolumeSnapshot readyToUse',
      async () => {
        const v = z
          .object({
            status: z
              .object({
                readyToUse: z.boolean().optional(),
                boundVolumeSnapshotContentName: z.string().optional(),
                restoreSize: z.string().optional(),
              })
              .optional(),
          })
          .parse(JSON.parse(await kubectl(['get', 'volumesnapshot', 'db-snap', '-o', 'json'])));
        return v.status?.readyToUse === true ? v.status : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500, context: () => k8s.logTails() },
    );
    expect(snap.restoreSize).toBe('128Mi');
    const handle = (
      await kubectl([
        'get',
        'volumesnapshotcontent',
        snap.boundVolumeSnapshotContentName ?? '',
        '-o',
        'jsonpath={.status.snapshotHandle}',
      ])
    ).trim();
    const flockerSnap = (await k8s.flocker.listSnapshots()).find((x) => x.snapshot_id === handle);
    expect(flockerSnap).toMatchObject({
      dataset_id: volumeId,
      metadata: { name: expect.stringMatching(/^snapshot-/) },
    });
    // Written after the snapshot: the restore must not see it, the clone must.
    await exec(podOf, 'echo after-snapshot > /data/marker; sync');

    const claimAndReader = (name: string, dataSource: string) => `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: ${name}}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: flocker
  resources: {requests: {storage: 128Mi}}
  dataSource: ${dataSource}
---
apiVersion: v1
kind: Pod
metadata: {name: ${name}-reader}
spec:
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 1
  containers:
  - name: r
    image: docker.io/library/busybox:1.35
    imagePullPolicy: Never
    command: ["/bin/sh", "-c", "exec sleep 100000"]
    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: ${name}}}]
`;
    await kubectl(
      ['apply', '-f', '-'],
      claimAndReader('restored', '{apiGroup: snapshot.storage.k8s.io, kind: VolumeSnapshot, name: db-snap}') +
        '---\n' +
        claimAndReader('cloned', `{kind: PersistentVolumeClaim, name: ${pvcName}}`),
    );
    await k8s.podRunning('restored-reader');
    await k8s.podRunning('cloned-reader');
    expect(await exec('restored-reader', 'cat /data/marker /data/first')).toMatch(
      /^before-snapshot\nwritten on node\d\n$/,
    );
    expect(await exec('cloned-reader', 'cat /data/marker /data/first')).toMatch(
      /^after-snapshot\nwritten on node\d\n$/,
    );
    // In Flocker: the restore a clone of that snapshot, the PVC clone a clone of the source volume.
    const handleOf = async (pvc: string) => {
      const pv = (await kubectl(['get', 'pvc', pvc, '-o', 'jsonpath={.spec.volumeName}'])).trim();
      return (await kubectl(['get', 'pv', pv, '-o', 'jsonpath={.spec.csi.volumeHandle}'])).trim();
    };
    const restored = await dataset(await handleOf('restored'));
    expect(restored?.source_snapshot_id).toBe(handle);
    expect(restored?.maximum_size).toBe(128 * 1024 * 1024);
    const clonedId = await handleOf('cloned');
    const implicit = (await k8s.flocker.listSnapshots()).find(
      (x) => x.metadata['clusterhq:flocker:clone'] === clonedId,
    );
    expect(implicit?.dataset_id).toBe(volumeId);
    expect((await dataset(clonedId))?.source_snapshot_id).toBe(implicit?.snapshot_id);
    // Writes to a clone stay in the clone.
    await exec('cloned-reader', 'echo clone-only > /data/marker; sync');
    expect(await exec(podOf, 'cat /data/marker')).toBe('after-snapshot\n');

    // Cleaning up: the VolumeSnapshot (deletionPolicy Delete) deletes the Flocker snapshot, the clones' claims
    // their datasets, and the PVC clone's implicit snapshot goes with it.
    await kubectl(['delete', 'pod', 'restored-reader', 'cloned-reader', '--wait=true', '--timeout=120s']);
    await kubectl(['delete', 'pvc', 'restored', 'cloned', '--wait=true', '--timeout=120s']);
    await kubectl(['delete', 'volumesnapshot', 'db-snap', '--wait=true', '--timeout=120s']);
    await waitFor(
      'the Flocker snapshots and the clones deleted',
      async () => {
        const live = (await k8s.flocker.listSnapshots()).filter((x) => x.deleted !== true);
        const clones = (await k8s.flocker.listDatasets()).filter((d) => !d.deleted && d.dataset_id !== volumeId);
        return live.length === 0 && clones.length === 0 ? true : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500, context: () => k8s.logTails() },
    );
  });

  it('deleting the PVC deletes the dataset', async () => {
    await kubectl(['delete', 'statefulset', 'db', '--wait=true', '--timeout=120s']);
    await waitFor(`pod ${podOf} gone`, async () => ((await k8s.pod(podOf)) === undefined ? true : undefined), {
      timeoutMs: 120_000,
      intervalMs: 500,
    });
    await kubectl(['delete', 'pvc', pvcName, '--wait=true', '--timeout=120s']);
    await waitFor(
      'the PV gone',
      async () => ((await kubectl(['get', 'pv', '-o', 'name'])).trim() === '' ? true : undefined),
      {
        timeoutMs: 120_000,
        intervalMs: 500,
        context: () => k8s.logTails(),
      },
    );
    expect(await dataset(volumeId)).toBeUndefined();
  });

  it('down.sh stops everything and restores the machine (sysctls, iptables chains, links, mounts)', async () => {
    await k8s.down();
    expect(existsSync(DIR)).toBe(false);
    expect(hostState()).toEqual(before);
  });
});
