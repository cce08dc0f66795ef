/**
 * What the review T7 suites (a Kubernetes operator's faults on the CSI driver) share: the writer StatefulSet whose
 * pod w-0 appends the node it started on to its PVC's /data/log, and the harness's processes by name (lib.sh's
 * `start`, their pid files and logs) in one harness state dir.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { K8S_SCRIPTS } from '../k8s-harness';

export const pod = 'w-0';
export const pvc = 'data-w-0';

export const manifests = `
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: ${pvc}}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: flocker
  resources: {requests: {storage: 64Mi}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: w}
spec:
  replicas: 1
  serviceName: w
  selector: {matchLabels: {app: w}}
  template:
    metadata: {labels: {app: w}}
    spec:
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: 1
      containers:
      - name: w
        image: docker.io/library/busybox:1.35
        imagePullPolicy: Never
        env: [{name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}]
        command: ["/bin/sh", "-c", "echo \\"started on $NODE\\" >> /data/log; sync /data/log; exec sleep 100000"]
        volumeMounts: [{name: data, mountPath: /data}]
      volumes: [{name: data, persistentVolumeClaim: {claimName: ${pvc}}}]
`;

export interface HarnessProcesses {
  /** Runs bash with the harness's lib.sh sourced (its `start`, paths and ports). */
  bash: (script: string) => Promise<string>;
  /** The pid of a process the harness started. */
  pidOf: (name: string) => number;
  /** Node i's CSI node plugin log so far ('' before it exists). */
  csiLog: (i: number) => string;
}

export function harnessProcesses(dir: string): HarnessProcesses {
  return {
    bash: (script) =>
      new Promise((res, rej) => {
        execFile(
          'bash',
          ['-c', `set -eu; source ${join(K8S_SCRIPTS, 'lib.sh')}; ${script}`],
          { env: { ...process.env, FLOCKER_K8S_DIR: dir }, timeout: 60_000 },
          (err, stdout, stderr) => (err ? rej(new Error(`${script}: ${stderr || err.message}`)) : res(stdout)),
        );
      }),
    pidOf: (name) => Number(readFileSync(join(dir, 'run', `${name}.pid`), 'utf8').trim()),
    csiLog: (i) => {
      const f = join(dir, 'logs', `flocker-csi-n${i}.log`);
      return existsSync(f) ? readFileSync(f, 'utf8') : '';
    },
  };
}
