/**
 * Flocker v1 API compatibility with the real Go client Kubernetes' in-tree flocker volume plugin used
 * (github.com/clusterhq/flocker-go, unchanged, the version k8s vendored): e2e/go/flocker-go-check drives a
 * control service over mutual TLS and two real dataset agents (btrfs loop pools, nodes a and b on 127.0.0.2/.3)
 * the way that plugin did, one step per run, with an API user certificate signed by the cluster CA:
 * - provision on a: GetPrimaryUUID (its node found by its address in /v1/state/nodes), CreateDataset by metadata
 *   name and size (the client's own wait for the state), the same dataset_id again refused as existing (409);
 * - attach on a: GetDatasetID by name, GetDatasetState, no move; the path it gets is really mounted on a;
 * - attach on b: UpdatePrimaryForDataset to b, polled until b is the primary with a path: mounted on b with a's
 *   file, no longer on a;
 * - delete: DeleteDataset; the name no longer resolves, the state is gone, nothing left on either pool.
 * The Go program is built once per source (binary cached in os.tmpdir() keyed by the hash of go.mod, go.sum
 * and main.go). Needs root and Go.
 */
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { z } from 'zod';
import { ClusterPki } from './cluster/pki';
import { REPO_ROOT } from './cluster/Cluster';
import { btrfsPool, MiB, mountsAt, sha256, TwoLocalAgents } from './localTwoAgents';

jest.setTimeout(120_000);

const SOURCE = path.join(REPO_ROOT, 'e2e/go/flocker-go-check');

/** The Go toolchain: on PATH, else where scripts/k8s/build.sh also looks. */
function goBinary(): string {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/local/go/bin']) {
    const go = path.join(dir, 'go');
    if (dir !== '' && fs.existsSync(go)) return go;
  }
  throw new Error('no go on PATH nor in /usr/local/go/bin: the flocker-go check is a Go program');
}

/** The program built from SOURCE, once per content of its sources (the module from the cache, else the proxy). */
function buildCheck(): string {
  const hash = createHash('sha256');
  for (const f of ['go.mod', 'go.sum', 'main.go']) hash.update(fs.readFileSync(path.join(SOURCE, f)));
  const bin = path.join(os.tmpdir(), `flocker-go-check-${hash.digest('hex').slice(0, 16)}`);
  if (fs.existsSync(bin)) return bin;
  const tmp = `${bin}.${process.pid}`;
  execFileSync(goBinary(), ['build', '-trimpath', '-o', tmp, '.'], {
    cwd: SOURCE,
    env: { ...process.env, GOFLAGS: '-mod=mod', GOTOOLCHAIN: 'local', CGO_ENABLED: '0' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  fs.renameSync(tmp, bin);
  return bin;
}

const nodeState = z.object({ uuid: z.string(), host: z.string() });
const datasetState = z.object({
  path: z.string(),
  dataset_id: z.string(),
  primary: z.string().optional(),
  maximum_size: z.union([z.string(), z.number()]).optional(),
});
const checkResult = z.object({
  step: z.string(),
  dataset_id: z.string(),
  primary: z.string().optional(),
  path: z.string().optional(),
  nodes: z.array(nodeState).optional(),
  created: datasetState.optional(),
  conflict: z.string().optional(),
  moved: z.boolean().optional(),
  updated: datasetState.optional(),
  polls: z.number(),
});

describe('the real flocker-go client (Kubernetes flocker volume plugin) against the v1 API', () => {
  let bed: TwoLocalAgents;
  let bin: string;
  let userArgs: string[];

  beforeAll(async () => {
    bin = buildCheck();
    bed = new TwoLocalAgents('flocker-go-');
    await bed.startControl();
    await bed.addNodes('btrfs', btrfsPool);
    for (const n of bed.ab) bed.start(n);
    await bed.waitBothReport();
    // Kubernetes' apiuser.crt/.key: an API user certificate signed by the cluster CA.
    const pki = await ClusterPki.open(path.join(bed.dir, 'pki'));
    const user = await pki.user('kubernetes');
    userArgs = ['-host', '127.0.0.1', '-port', String(bed.control.port), '-ca', pki.caFile];
    userArgs.push('-cert', user.cert, '-key', user.key, '-tick', '200ms', '-timeout', '60s');
  });
  afterAll(async () => {
    await bed?.close();
  });

  /**
   * One step of the program; its JSON line (fails with its stderr and the agents' logs). Asynchronous: the
   * control service it talks to runs in this process.
   */
  async function check(step: string, args: string[]): Promise<z.infer<typeof checkResult>> {
    try {
      const { stdout } = await promisify(execFile)(bin, [step, ...userArgs, ...args], { encoding: 'utf8' });
      return checkResult.parse(JSON.parse(stdout));
    } catch (e) {
      const stderr = (e as { stderr?: string }).stderr ?? '';
      throw new Error(`flocker-go-check ${step} failed: ${stderr || String(e)}\n${bed.logs()}`, { cause: e });
    }
  }

  test('provision, attach, move to another node, delete: the way Kubernetes did', async () => {
    const [a, b] = bed.ab;
    const name = 'pvc-flocker-go';

    const made = await check('provision', ['-ip', a.address, '-name', name, '-size', String(64 * MiB)]);
    expect(made.primary).toBe(a.uuid);
    expect(made.nodes?.map((n) => n.host).sort()).toEqual([a.address, b.address]);
    expect(made.created).toMatchObject({ dataset_id: made.dataset_id, primary: a.uuid });
    expect(Number(made.created?.maximum_size)).toBe(64 * MiB);
    expect(made.conflict).toBe('The volume already exists');
    const id = made.dataset_id;
    const config = (await bed.admin.listDatasets()).find((d) => d.dataset_id === id);
    expect(config?.metadata).toEqual({ name, type: 'k8s-dynamic-prov' });
    expect(config?.primary).toBe(a.uuid);

    const onA = await check('attach', ['-ip', a.address, '-name', name]);
    expect(onA).toMatchObject({ dataset_id: id, primary: a.uuid, path: path.join(a.mountRoot, id) });
    expect(onA.moved).toBeUndefined();
    expect(mountsAt(path.join(a.mountRoot, id))).not.toEqual([]);
    const file = path.join(a.mountRoot, id, 'written-on-a');
    fs.writeFileSync(file, `flocker-go ${id}\n`);
    const digest = sha256(file);

    const onB = await check('attach', ['-ip', b.address, '-name', name]);
    expect(onB).toMatchObject({ dataset_id: id, primary: b.uuid, path: path.join(b.mountRoot, id), moved: true });
    expect(onB.updated?.dataset_id).toBe(id);
    expect(mountsAt(path.join(b.mountRoot, id))).not.toEqual([]);
    expect(sha256(path.join(b.mountRoot, id, 'written-on-a'))).toBe(digest);
    await bed.waitFor(
      'a to let go of its mount',
      () => (mountsAt(path.join(a.mountRoot, id)).length === 0 ? true : undefined),
      30_000,
      100,
    );

    const gone = await check('delete', ['-name', name]);
    expect(gone.dataset_id).toBe(id);
    await bed.waitNothingLeft(id);
    expect(mountsAt(path.join(b.mountRoot, id))).toEqual([]);
  });
});
