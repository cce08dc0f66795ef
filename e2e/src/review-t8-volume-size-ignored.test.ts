/**
 * Review T8 (tester TD, session 20), finding TD-3: a redeploy that changes an application's volume maximum_size is
 * silently ignored.
 *
 * db is deployed with `volume: {maximum_size: 64MiB}`, then deployed again with 128MiB. The plan says "1 unchanged",
 * the deploy says "deployed", exit 0, and the volume stays 64 MiB: compose (control-api containers.ts) uses an
 * existing dataset of that name as it is (`else dataset = found`), and the plan (cli deploy/plan.ts) does not compare
 * sizes. Expected: the volume is grown (as `flocker volumes resize` does), or the plan says the size is not applied
 * and how to apply it — never a silent "unchanged".
 */
import { TINY_IMAGE, waitFor, type Cluster, type ClusterHost } from './cluster';
import { deploySuite, flockerDeploy, hostOf } from './review-t8-deploy';

jest.setTimeout(240_000);

const MIB = 1024 * 1024;
let cluster: Cluster;
let a: ClusterHost;
let dir: string;

const application = (size: string): string => `version: 1
applications:
  td-vol:
    image: ${TINY_IMAGE}
    volume:
      mountpoint: /data
      maximum_size: ${size}
    command_line: ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
`;

deploySuite({ hosts: 1, nodeTimeoutSeconds: 10 }, 'td-size-', application('64MiB'), (started, d) => {
  cluster = started;
  [a] = cluster.hosts as [ClusterHost];
  dir = d;
});

describe('a redeploy with a changed volume maximum_size (review T8, TD-3)', () => {
  it('is applied, or the plan says it is not — never a silent "unchanged"', async () => {
    const deployment = `version: 1\nnodes:\n  ${await hostOf(cluster, a)}: [td-vol]\n`;
    const first = await flockerDeploy(cluster, dir, deployment, application('64MiB'));
    expect(first.code).toBe(0);
    const sizeOf = async () =>
      (await cluster.client.listDatasets()).find((d) => d.metadata['name'] === 'td-vol')?.maximum_size;
    expect(await sizeOf()).toBe(64 * MIB);

    const bigger = await flockerDeploy(cluster, dir, deployment, application('128MiB'));
    // Before: "plan: 0 to add, 0 to change, 0 to remove, 1 unchanged", "deployed", exit 0, and still 64 MiB.
    const said = /maximum_size|128 ?MiB/.test(bigger.stdout + bigger.stderr);
    const applied = (await sizeOf()) === 128 * MIB;
    expect({ said, applied, stdout: bigger.stdout }).toEqual(
      expect.objectContaining(applied ? { applied: true } : { said: true }),
    );
    // Fixed (FXD2): the volume grows, and the plan says so.
    expect({ code: bigger.code, applied }).toEqual({ code: 0, applied: true });
    expect(bigger.stdout).toContain('~ td-vol: maximum_size 64 MiB → 128 MiB (the volume grows)');
    // Its agent grows the volume (its block device: the file system grows online, or, on a machine such as this one
    // whose agent may not, offline once no container uses it; the dataset-agent README's Growth).
    const id = (await cluster.client.listDatasets()).find((d) => d.metadata['name'] === 'td-vol')?.dataset_id;
    await waitFor(
      'the agent to report td-vol grown to 128 MiB',
      async () => {
        const [state] = await cluster.client.listDatasetState({ datasetId: id ?? '' });
        return state?.maximum_size === 128 * MIB ? true : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    // The same files again: nothing changes.
    const again = await flockerDeploy(cluster, dir, deployment, application('128MiB'), []);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('0 to change');
    // Smaller: refused (volumes do not shrink), said in the plan and by the control service, nothing changed.
    const smaller = await flockerDeploy(cluster, dir, deployment, application('64MiB'), []);
    expect(smaller.code).not.toBe(0);
    expect(smaller.stdout).toContain('! td-vol: maximum_size 64 MiB is smaller than the volume td-vol (128 MiB)');
    expect(smaller.stdout + smaller.stderr).toMatch(/volumes do not shrink/);
    expect(await sizeOf()).toBe(128 * MIB);
  });
});
