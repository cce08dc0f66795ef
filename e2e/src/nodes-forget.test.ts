/**
 * Review FR finding 9 (session 17): the file store kept every block-backend node that ever reported
 * (node_identities.json), so a retired host came back after each control restart as a ghost: a node_dead event, a dead
 * row in the cluster's state and an entry in every agent's view, for ever. `flocker nodes forget <host>` ends that:
 * here a host powered off for good, the control service restarted (the ghost is there), the host forgotten with the
 * CLI, the control service killed (-9) and started again: no ghost, no node_dead event for it. Refused while the host
 * reports. Needs root.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, startCluster, waitFor, type Cluster, type ClusterHost } from './cluster';

jest.setTimeout(300_000);

const T = 4;
const CLI = join(REPO_ROOT, 'packages/cli/dist/main.js');

let cluster: Cluster | undefined;

afterEach(async () => {
  if (cluster !== undefined && !cluster.isStopped) await cluster.stop();
  cluster = undefined;
});

function flocker(c: Cluster, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...c.cliEnv() },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  p.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  p.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  return new Promise((resolve) => p.on('close', (code) => resolve({ code, stdout, stderr })));
}

/** The cluster's node rows as [uuid, alive], and the node_dead events naming `uuid`. */
async function seen(c: Cluster, uuid: string): Promise<{ rows: [string, boolean][]; deadEvents: number }> {
  const snapshot = await c.client.waitForCluster(undefined, 0);
  const events = await c.client.listEvents();
  return {
    rows: snapshot.nodes.map((n): [string, boolean] => [n.uuid, n.alive]).sort(),
    deadEvents: events.filter((e) => e.kind === 'node_dead' && e.node_uuid === uuid).length,
  };
}

it('a retired host, forgotten, is no ghost after a control restart (kill -9)', async () => {
  cluster = await startCluster({ hosts: 2, nodeTimeoutSeconds: T });
  const c = cluster;
  const [a, b] = c.hosts as [ClusterHost, ClusterHost];
  const uuidA = a.requireNodeUuid();
  const uuidB = b.requireNodeUuid();

  // Alive: refused, with what to do first.
  const early = await flocker(c, ['nodes', 'forget', a.address]);
  expect({ code: early.code, stderr: early.stderr }).toEqual({
    code: 4,
    stderr: expect.stringMatching(/may not be forgotten yet:\n {2}- Its dataset agent is reporting/),
  });

  await a.powerOff();
  await c.killControl();
  await c.startControl();
  // From start + T the retired host is a ghost: dead row, node_dead event.
  await waitFor('a shown dead after the restart', async () => (await seen(c, uuidA)).deadEvents === 1, {
    timeoutMs: (T + 20) * 1000,
  });
  expect((await seen(c, uuidA)).rows).toEqual(
    [
      [uuidA, false],
      [uuidB, true],
    ].sort(),
  );

  const forgot = await flocker(c, ['nodes', 'forget', a.address, '--json']);
  expect({ code: forgot.code, stderr: forgot.stderr }).toEqual({ code: 0, stderr: '' });
  expect(JSON.parse(forgot.stdout)).toMatchObject({ uuid: uuidA, host: a.address });
  expect((await seen(c, uuidA)).rows).toEqual([[uuidB, true]]);
  // Durably: the control service's node_identities.json no longer names it.
  const identities = JSON.parse(readFileSync(join(c.layout.controlDir, 'data', 'node_identities.json'), 'utf8')) as {
    nodes: { uuid: string }[];
  };
  expect(identities.nodes.map((n) => n.uuid)).toEqual([uuidB]);

  await c.killControl();
  await c.startControl();
  // Past start + T (and a margin): still no ghost, no node_dead event.
  await new Promise((r) => setTimeout(r, (T + 4) * 1000));
  expect(await seen(c, uuidA)).toEqual({ rows: [[uuidB, true]], deadEvents: 0 });
  const again = await flocker(c, ['nodes', 'forget', uuidA]);
  expect(again.code).toBe(3);
});
