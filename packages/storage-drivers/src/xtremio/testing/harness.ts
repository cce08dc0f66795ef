/**
 * Test harness: the XtremIO simulator as a separate process, and per "host" an initiator name file,
 * a by-id directory and an iscsiadm stand-in wrapper (see iscsiadmStandIn.ts), all under one
 * temporary root that cleanup() removes with every loop device under it. A run killed before its
 * cleanup (kill -9) leaves its root and loop devices: the next start removes them (leftovers.ts),
 * and its simulator exits once its parent is gone (its stdin closes).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as os from 'node:os';
import { destroyTempRoot } from '../../testing/testSupport';
import type { XtremioDriverOptionsInput } from '../schemas';
import { rootPrefix, selfOwner, sweepDeadRoots } from './leftovers';

export const SIM_USER = 'admin';
export const SIM_PASSWORD = 'Xtrem10';

export interface SimulatedArray {
  readonly url: string;
  readonly root: string;
  /** Driver options for one simulated host (its own IQN, by-id dir and iscsiadm stand-in). */
  host(name: string, extra?: Partial<XtremioDriverOptionsInput>): Promise<XtremioDriverOptionsInput>;
  /** Injects a fault (see simulator.ts Fault). */
  fault(f: {
    op: string;
    kind: 'busy' | 'error' | 'lost';
    message?: string;
    delayMs?: number;
    times?: number;
  }): Promise<void>;
  cleanup(): Promise<void>;
}

const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

export async function startSimulatedArray(clusterId = 'test'): Promise<SimulatedArray> {
  const self = selfOwner();
  await sweepDeadRoots(os.tmpdir(), self);
  // Named by this process (leftovers.ts): a later start tells it from a live run's once this process is gone.
  const root = await fs.mkdtemp(path.join(os.tmpdir(), rootPrefix(self)));
  const child: ChildProcess = spawn(
    process.execPath,
    [path.join(__dirname, 'simulatorMain.js'), path.join(root, 'array'), SIM_USER, SIM_PASSWORD],
    {
      // stdin: a pipe never written to, closed when this process ends however it ends (the simulator exits then).
      stdio: ['pipe', 'pipe', 'inherit'],
      env: { ...process.env, XIO_SIM_EXIT_WITH_STDIN: '1' },
    },
  );
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`the simulator exited with ${code}`)));
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    root,
    async host(name, extra = {}) {
      const dir = path.join(root, 'hosts', name);
      await fs.mkdir(path.join(dir, 'by-id'), { recursive: true });
      const iqn = `iqn.1993-08.org.debian:01:${name}`;
      await fs.writeFile(path.join(dir, 'initiatorname.iscsi'), `## test host ${name}\nInitiatorName=${iqn}\n`);
      const script = path.join(dir, 'iscsiadm');
      await fs.writeFile(
        script,
        [
          '#!/bin/sh',
          `export XIO_SIM_URL=${shellQuote(url)}`,
          `export XIO_INITIATOR_FILE=${shellQuote(path.join(dir, 'initiatorname.iscsi'))}`,
          `export XIO_BY_ID_DIR=${shellQuote(path.join(dir, 'by-id'))}`,
          `export XIO_STATE_DIR=${shellQuote(path.join(dir, 'state'))}`,
          `exec ${shellQuote(process.execPath)} ${shellQuote(path.join(__dirname, 'iscsiadmStandIn.js'))} "$@"`,
          '',
        ].join('\n'),
        { mode: 0o755 },
      );
      return {
        backend: 'xtremio',
        xms_url: url,
        username: SIM_USER,
        password: SIM_PASSWORD,
        cluster_id: clusterId,
        initiator_name_file: path.join(dir, 'initiatorname.iscsi'),
        iscsiadm_path: script,
        device_by_id_dir: path.join(dir, 'by-id'),
        operation_timeout_seconds: 30,
        ...extra,
      };
    },
    async fault(f) {
      await fetch(`${url}/_sim/fault`, { method: 'POST', body: JSON.stringify(f) });
    },
    async cleanup() {
      child.kill('SIGTERM');
      await destroyTempRoot(root);
    },
  };
}
