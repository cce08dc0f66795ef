/**
 * `flocker backup` commands that read the store itself, run as a user would (the built CLI, moto's S3, no
 * control service): review T5 of session 19, findings F5 (list in a disaster), F6 (credentials, a wrong bucket,
 * what collects chunks) and F4's operator path (verify).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backupVolume, S3ObjectStore } from '@flocker/backup';
import { startMoto, type MotoServer } from '@flocker/storage-drivers/testing';
import { REPO_ROOT } from './cluster';
import { removeTree } from './removeTree';

jest.setTimeout(120_000);

const MiB = 1024 * 1024;
const BUCKET = 'backups-cli-store';
const VOL = '0b6a53f0-5c3e-4a43-9d4c-6f1f1a3b2c01';
let moto: MotoServer;
let dir: string;

beforeAll(async () => {
  moto = await startMoto();
  const res = await fetch(`${moto.endpoint}/${BUCKET}`, { method: 'PUT' });
  expect(res.status).toBe(200);
  dir = mkdtempSync(join(tmpdir(), 'backups-cli-store-'));
});
afterAll(async () => {
  await moto.stop();
  removeTree(dir);
});

const store = (url: string): S3ObjectStore =>
  new S3ObjectStore({
    url,
    endpoint: moto.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
  });

/** No control service anywhere (port 1); S3 credentials unless `credentials: false` (and then none to find). */
const flocker = async (
  args: string[],
  options: { credentials?: boolean } = {},
): Promise<{ code: number | null; out: string; err: string; ms: number }> => {
  const env: Record<string, string | undefined> = { ...process.env, FLOCKER_CONTROL_URL: 'http://127.0.0.1:1' };
  for (const k of Object.keys(env)) if (k.startsWith('AWS_')) delete env[k];
  Object.assign(
    env,
    options.credentials === false
      ? { HOME: dir, AWS_EC2_METADATA_DISABLED: 'true', AWS_REGION: 'us-east-1' }
      : { AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing', AWS_REGION: 'us-east-1' },
  );
  const t0 = Date.now();
  return new Promise((res) => {
    const p = spawn(
      process.execPath,
      [join(REPO_ROOT, 'packages/cli/dist/main.js'), ...args, '--endpoint', moto.endpoint],
      {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let err = '';
    p.stdout.on('data', (c: Buffer) => (out += c.toString()));
    p.stderr.on('data', (c: Buffer) => (err += c.toString()));
    p.on('close', (code) => res({ code, out, err, ms: Date.now() - t0 }));
  });
};

describe('flocker backup against the store alone (review T5 F4, F5, F6)', () => {
  const target = `s3://${BUCKET}/x`;
  let ids: string[];

  beforeAll(async () => {
    const image = join(dir, 'img');
    writeFileSync(image, randomBytes(2 * MiB));
    const s = store(target);
    const a = await backupVolume(image, s, { volumeId: VOL, snapshotId: 's1', chunkSize: MiB });
    await new Promise((r) => setTimeout(r, 5));
    writeFileSync(image, randomBytes(2 * MiB));
    const b = await backupVolume(image, s, { volumeId: VOL, snapshotId: 's2', chunkSize: MiB, previous: a });
    ids = [b.backupId, a.backupId];
  });

  it('list works without the control service: dataset ids instead of names, a note on stderr (F5)', async () => {
    const r = await flocker(['backup', 'list', '--from', target]);
    expect(r.code).toBe(0);
    for (const id of ids) expect(r.out).toContain(id);
    expect(r.err).toContain('volume names not shown: the control service did not answer');
    const json = await flocker(['backup', 'list', '--from', target, '--volume', VOL, '--json']);
    expect(json.code).toBe(0);
    expect((JSON.parse(json.out) as { backup_id: string }[]).map((x) => x.backup_id)).toEqual(ids);
    const byName = await flocker(['backup', 'list', '--from', target, '--volume', 'pgdata']);
    expect(byName.code).toBe(6);
    expect(byName.err).toContain('give its dataset id');
  });

  it('no S3 credentials: exit 7 at once, saying what to set (F6)', async () => {
    const r = await flocker(['backup', 'delete', ids[0]!, '--from', target], { credentials: false });
    console.log(`no credentials: exit ${r.code} after ${r.ms} ms: ${r.err.trim()}`);
    expect(r.code).toBe(7);
    expect(r.err).toContain('AWS_ACCESS_KEY_ID');
    expect(r.ms).toBeLessThan(5000);
  });

  it('a bucket that does not exist is not "no backup" (F6)', async () => {
    const r = await flocker(['backup', 'delete', ids[0]!, '--from', 's3://no-such-bucket-t5/x']);
    expect(r.code).toBe(7);
    expect(r.err).toContain('bucket does not exist');
  });

  it('verify reads every chunk: exit 0 when all restore, exit 1 naming each damaged one (F4)', async () => {
    const ok = await flocker(['backup', 'verify', ids[1]!, '--from', target]);
    expect(ok.code).toBe(0);
    expect(ok.out).toContain(`Backup ${ids[1]} verified: 2 chunks`);
    const s = store(target);
    const m = await s.get(`manifests/${ids[1]}.json`);
    const first = (JSON.parse(m!.toString()) as { chunks: string[] }).chunks[0]!;
    const key = `chunks/${first.slice(0, 2)}/${first}`;
    await s.put(key, randomBytes(3000));
    const bad = await flocker(['backup', 'verify', ids[1]!, '--from', target, '--json']);
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.out)).toMatchObject({
      backup_id: ids[1],
      problems: [{ index: 0, code: 'CHUNK_CORRUPT', key }],
    });
  });

  it('delete leaves the chunks; gc collects the ones no backup needs (F6)', async () => {
    const target2 = `s3://${BUCKET}/gc`;
    const image = join(dir, 'img2');
    writeFileSync(image, randomBytes(2 * MiB));
    const m = await backupVolume(image, store(target2), { volumeId: VOL, snapshotId: 's1', chunkSize: MiB });
    expect((await flocker(['backup', 'delete', m.backupId, '--from', target2])).code).toBe(0);
    const kept = await flocker(['backup', 'gc', '--from', target2, '--json']);
    expect(JSON.parse(kept.out)).toMatchObject({ deferred: false, deletedChunks: 0, youngChunks: 2 });
    const gc = await flocker(['backup', 'gc', '--from', target2, '--grace-hours', '0']);
    expect(gc.code).toBe(0);
    expect(gc.out).toContain('Deleted 2 chunks');
  });
});
