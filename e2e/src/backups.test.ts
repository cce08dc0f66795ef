/**
 * End to end (issue 20): backups to object storage and restores, through the API, with the
 * control service (in process), real dataset agents (spawned processes) on a shared loopback
 * pool (real loop devices, ext4, fsfreeze, mounts) and moto's S3 server (the AWS SDK in the
 * agents, S3 settings from the standard AWS_* environment variables).
 *
 * Write data, back up (the agent killed -9 while it runs, restarted), change 1%, back up again (incremental: few bytes uploaded), again with
 * keep 2 (the oldest pruned); destroy the volume; restore into a new dataset on the other node
 * with that agent killed (SIGKILL) in the middle of the restore: restarted, it restores again
 * and mounts the same bytes. Then one chunk object overwritten with garbage in moto: a restore
 * fails with CHUNK_CORRUPT naming the object, and the dataset is never mounted.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import type { BackupState, FlockerClient } from '@flocker/api';
import { listBackups, S3ObjectStore } from '@flocker/backup';
import { startMoto, type MotoServer } from '@flocker/storage-drivers/testing';
import { REPO_ROOT } from './cluster';
import { LocalAgentBed, mountsUnder, type AgentProc } from './localAgents';

jest.setTimeout(300_000);

const MiB = 1024 * 1024;
const BUCKET = 'flocker-e2e';
const TARGET = `s3://${BUCKET}/cluster`;
let moto: MotoServer;
let bed: LocalAgentBed;
let client: FlockerClient;

beforeAll(async () => {
  moto = await startMoto();
  const res = await fetch(`${moto.endpoint}/${BUCKET}`, { method: 'PUT' });
  expect(res.status).toBe(200);
});
afterAll(() => moto.stop());

beforeEach(async () => {
  bed = await LocalAgentBed.start('flocker-backups-e2e-');
  ({ client } = bed);
});
afterEach(() => bed.close());

function s3Env(): Record<string, string> {
  return {
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_ENDPOINT_URL: moto.endpoint,
    AWS_REGION: 'us-east-1',
  };
}

function store(): S3ObjectStore {
  return new S3ObjectStore({
    url: TARGET,
    endpoint: moto.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
  });
}

const mountPath = (name: string, datasetId: string): string => join(bed.dir, name, 'mnt', datasetId);

async function waitMountedOn(name: string, datasetId: string, timeoutMs = 60_000): Promise<string> {
  const uuid = bed.nodeUuid(name);
  const path = mountPath(name, datasetId);
  await bed.waitFor(
    `${datasetId} mounted on ${name}`,
    async () => {
      const s = (await client.listDatasetState()).find((d) => d.dataset_id === datasetId);
      return s?.primary === uuid && s.path === path;
    },
    timeoutMs,
  );
  expect(mountsUnder(bed.dir).filter((m) => m.mountPoint === path)).toHaveLength(1);
  return path;
}

/** Asks for a backup and waits until it is done; `whileRunning` runs once the agent reports it running. */
async function backUp(datasetId: string, keep?: number, whileRunning?: () => Promise<void>): Promise<BackupState> {
  const request = await client.createBackup({ dataset_id: datasetId, target: TARGET, ...(keep ? { keep } : {}) });
  if (whileRunning !== undefined) {
    await bed.waitFor(
      `backup ${request.backup_id} running`,
      async () => (await client.listBackupState()).find((b) => b.backup_id === request.backup_id)?.status === 'running',
      60_000,
      5,
    );
    await whileRunning();
  }
  const state = await bed.waitFor(
    `backup ${request.backup_id} done`,
    async () => {
      const s = (await client.listBackupState()).find((b) => b.backup_id === request.backup_id);
      if (s?.status === 'failed') throw new Error(`backup failed: ${JSON.stringify(s.error)}`);
      return s?.status === 'done' ? s : undefined;
    },
    60_000,
  );
  // Its implicit snapshot is deleted and then purged once the backend no longer holds it.
  await bed.waitFor('the implicit snapshot purged', async () =>
    (await client.listSnapshots()).every((s) => s.snapshot_id !== request.backup_id),
  );
  return state;
}

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

async function kill9(agent: AgentProc): Promise<void> {
  agent.proc.kill('SIGKILL');
  await agent.exited;
}

/** The key of the first stored data object (chunk or delta) a backup's manifest names. */
async function firstDataObject(storedBackupId: string): Promise<string> {
  const body = await store().get(`manifests/${storedBackupId}.json`);
  if (body === undefined) throw new Error(`no manifest of ${storedBackupId}`);
  const manifest = JSON.parse(body.toString('utf8')) as { chunks: (string | null)[] };
  const entry = manifest.chunks.find((c): c is string => c !== null);
  if (entry === undefined) throw new Error('a backup without data');
  const [hash, base] = entry.split('.');
  return base === undefined ? `chunks/${hash!.slice(0, 2)}/${hash}` : `deltas/${hash!.slice(0, 2)}/${hash}.${base}`;
}

describe('backups to S3 (moto) and restores with real loopback agents', () => {
  it('backup, incremental backup, keep 2; restore on the other node across a kill -9; a corrupt chunk fails the restore', async () => {
    const firstA = bed.startAgent('a', s3Env());
    const b = bed.startAgent('b', s3Env());
    await bed.waitFor('both nodes to report', async () => {
      const known = (await client.listNodes()).map((n) => n.uuid);
      return ['a', 'b'].every(
        (n) => existsSync(join(bed.dir, n, 'state', 'node.json')) && known.includes(bed.nodeUuid(n)),
      );
    });
    const uuidA = bed.nodeUuid('a');
    const uuidB = bed.nodeUuid('b');

    const source = (await client.createDataset({ primary: uuidA, maximum_size: 64 * MiB })).dataset_id;
    const onA = await waitMountedOn('a', source);
    const data = join(onA, 'data.bin');
    writeFileSync(data, randomBytes(24 * MiB));
    execFileSync('sync', ['-f', data]);

    // The agent killed -9 while the first backup runs: restarted, it runs it again.
    let a = firstA;
    const first = await backUp(source, undefined, async () => {
      await kill9(a);
      a = bed.startAgent('a', s3Env());
    });
    expect(first).toMatchObject({ node_uuid: uuidA, dataset_id: source, target: TARGET, size: 64 * MiB });
    expect(first.stored_backup_id).toMatch(new RegExp(`^${source}/`));
    // Run twice: cut off by the kill, then again, to the end, by the restarted agent.
    expect(readFileSync(join(bed.dir, 'a.log'), 'utf8').split('backup started').length - 1).toBe(2);
    expect(first.uploaded_bytes).toBeGreaterThan(0);

    // 1% of the volume changed (640 KiB of the file, in place): the next backup sends little.
    const changed = 10 * 65536; // 640 KiB ≈ 1% of 64 MiB
    execFileSync(
      'dd',
      ['if=/dev/urandom', `of=${data}`, 'bs=64K', `count=${changed / 65536}`, 'seek=40', 'conv=notrunc,fsync'],
      { stdio: 'ignore' },
    );
    const second = await backUp(source);
    expect(second.stored_backup_id).not.toBe(first.stored_backup_id);

    console.log(
      `backup: first uploaded ${first.uploaded_bytes} B, after changing ${changed} B: ${second.uploaded_bytes} B`,
    );
    expect(second.uploaded_bytes).toBeLessThan(4 * changed);

    // keep 2: the third backup prunes the first.
    const third = await backUp(source, 2);
    expect((await listBackups(store(), source)).map((s) => s.backupId)).toEqual([
      third.stored_backup_id,
      second.stored_backup_id,
    ]);
    const checksum = sha256(data);

    // The volume goes.
    await client.deleteDataset(source);
    await bed.waitFor('the source volume gone', async () =>
      (await client.listDatasetState()).every((d) => d.dataset_id !== source),
    );

    // Restore onto b, b killed mid-restore: never mounted half-written; restarted, it restores again and mounts.
    const restored = await client.createDataset({
      primary: uuidB,
      maximum_size: 64 * MiB,
      source_backup: { target: TARGET, backup_id: third.stored_backup_id! },
    });
    const bLog = join(bed.dir, 'b.log');
    await bed.waitFor(
      'the restore started on b',
      () => readFileSync(bLog, 'utf8').includes('restore started'),
      60_000,
      5,
    );
    await kill9(b);
    expect(mountsUnder(bed.dir).filter((m) => m.mountPoint === mountPath('b', restored.dataset_id))).toEqual([]);
    bed.startAgent('b', s3Env());
    const onB = await waitMountedOn('b', restored.dataset_id);
    expect(sha256(join(onB, 'data.bin'))).toBe(checksum);
    expect(readFileSync(bLog, 'utf8').split('restore started').length - 1).toBeGreaterThanOrEqual(2);
    await bed.waitFor(
      'the restore marked done',
      async () =>
        (await client.listDatasets()).find((d) => d.dataset_id === restored.dataset_id)?.source_backup?.restored,
    );
    // A restored dataset is an ordinary one: it takes writes and backs up.
    writeFileSync(join(onB, 'after.txt'), 'written after the restore\n');

    // One chunk corrupted in the store: a restore fails with CHUNK_CORRUPT naming it, and is never mounted.
    const key = await firstDataObject(third.stored_backup_id!);
    await store().put(key, randomBytes(4096));
    const broken = await client.createDataset({
      primary: uuidA,
      maximum_size: 64 * MiB,
      source_backup: { target: TARGET, backup_id: third.stored_backup_id! },
    });
    const error = await bed.waitFor(
      'the restore to fail',
      async () => {
        const cluster = await client.waitForCluster();
        return cluster.nodes
          .find((n) => n.uuid === uuidA)
          ?.errors.find((e) => e.dataset_id === broken.dataset_id && e.code === 'CHUNK_CORRUPT');
      },
      60_000,
    );
    expect(error.message).toContain(key);
    expect(error.action).toBe('restore');
    expect(mountsUnder(bed.dir).filter((m) => m.mountPoint === mountPath('a', broken.dataset_id))).toEqual([]);
    expect((await client.listDatasetState()).find((d) => d.dataset_id === broken.dataset_id)?.path).toBeUndefined();
    expect(readdirSync(join(bed.dir, 'a', 'mnt')).includes(broken.dataset_id)).toBe(false);
  });

  it('flocker backup create, list, restore and delete; a restore of a damaged backup exits 1 with CHUNK_CORRUPT', async () => {
    bed.startAgent('a', s3Env());
    bed.startAgent('b', s3Env());
    await bed.waitFor('both nodes to report', async () => (await client.listNodes()).length === 2);
    const uuidB = bed.nodeUuid('b');
    const cli = async (args: string[], expected = 0): Promise<string> => {
      const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((res) => {
        const p = spawn(process.execPath, [join(REPO_ROOT, 'packages/cli/dist/main.js'), ...args], {
          env: { ...process.env, ...s3Env(), FLOCKER_CONTROL_URL: `http://127.0.0.1:${bed.control.port}` },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
        p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
        p.on('close', (code) => res({ code, stdout, stderr }));
      });
      if (r.code !== expected)
        throw new Error(`flocker ${args.join(' ')} exited ${r.code} (expected ${expected}): ${r.stderr}`);
      return expected === 0 ? r.stdout : r.stderr;
    };
    const prefix = `${TARGET}-cli`;
    await cli(['volumes', 'create', 'pg', '--size', '64MiB', '--node', bed.nodeUuid('a')]);
    const onA = mountPath('a', (await client.listDatasets())[0]!.dataset_id);
    writeFileSync(join(onA, 'data.bin'), randomBytes(4 * MiB));
    execFileSync('sync', ['-f', join(onA, 'data.bin')]);
    const checksum = sha256(join(onA, 'data.bin'));

    const created = JSON.parse(await cli(['backup', 'create', 'pg', '--to', prefix, '--keep', '1', '--json'])) as {
      state: BackupState;
    };
    expect(created.state.status).toBe('done');
    await cli(['backup', 'create', 'pg', '--to', prefix, '--keep', '1']);
    const listed = JSON.parse(await cli(['backup', 'list', '--from', prefix, '--volume', 'pg', '--json'])) as {
      backup_id: string;
      volume: string;
      size: number;
    }[];
    expect(listed).toHaveLength(1); // keep 1
    expect(listed[0]).toMatchObject({ volume: 'pg', size: 64 * MiB });
    const id = listed[0]!.backup_id;

    const out = await cli(['backup', 'restore', id, '--from', prefix, '--name', 'pg-restored', '--node', uuidB]);
    expect(out).toContain('pg-restored is restored and mounted');
    const restored = (await client.listDatasets()).find((d) => d.metadata.name === 'pg-restored')!;
    expect(sha256(join(mountPath('b', restored.dataset_id), 'data.bin'))).toBe(checksum);

    await cli(['backup', 'restore', 'nope', '--from', prefix, '--name', 'x', '--node', uuidB], 2);
    const key = await (async () => {
      const body = await new S3ObjectStore({
        url: prefix,
        endpoint: moto.endpoint,
        region: 'us-east-1',
        credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
      }).get(`manifests/${id}.json`);
      const entry = (JSON.parse(body!.toString('utf8')) as { chunks: (string | null)[] }).chunks.find(
        (c) => c !== null && !c.includes('.'),
      );
      const [hash] = entry!.split('.');
      return `chunks/${hash!.slice(0, 2)}/${hash}`;
    })();
    await new S3ObjectStore({
      url: prefix,
      endpoint: moto.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    }).put(key, randomBytes(1000));
    const err = await cli(['backup', 'restore', id, '--from', prefix, '--name', 'broken', '--node', uuidB], 1);
    expect(err).toContain('CHUNK_CORRUPT');
    await cli(['backup', 'delete', id, '--from', prefix]);
    expect(JSON.parse(await cli(['backup', 'list', '--from', prefix, '--json']))).toEqual([]);
    await cli(['backup', 'delete', id, '--from', prefix], 3);
  });
});
