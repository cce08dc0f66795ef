/**
 * Local storage that moves (issue 24), btrfs engine, for real: two simulated hosts, each with its
 * own btrfs file system on its own loop device, each side of a move its own process (the target's
 * TLS listener, the source's mover) with node certificates of one cluster CA made by flocker-ca's
 * code. Needs root (loop devices, mounts, btrfs).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createClusterCa, issueCertificate } from '@flocker/cli';
import { BtrfsEngine } from '@flocker/storage-drivers';
import { localEngineContract, makeBtrfsLoopPool, type BtrfsLoopPool } from '@flocker/storage-drivers/testing';
import { z } from 'zod';
import { removeTree } from './removeTree';

jest.setTimeout(120_000);

const NODE_SCRIPT = join(__dirname, 'localBtrfsNode.js');
const MiB = 1024 * 1024;
const SIZE = 1024 * MiB;

interface Host {
  readonly name: string;
  readonly pool: BtrfsLoopPool;
  readonly engine: BtrfsEngine;
  readonly certDir: string;
  readonly uuid: string;
  readonly mountRoot: string;
}

const Line = z.looseObject({ event: z.string() });
type Line = z.infer<typeof Line>;

interface NodeProc {
  readonly proc: ChildProcess;
  readonly lines: Line[];
  readonly exited: Promise<number | null>;
  /** Resolves with the first line from index `since` on that matches. */
  waitFor(match: (l: Line) => boolean, timeoutMs?: number, since?: number): Promise<Line>;
  stderr(): string;
}

function startNode(args: string[]): NodeProc {
  const proc = spawn(process.execPath, [NODE_SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Line[] = [];
  const waiters: Array<{ match: (l: Line) => boolean; resolve: (l: Line) => void }> = [];
  let buffered = '';
  let err = '';
  proc.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  proc.stdout?.on('data', (d: Buffer) => {
    buffered += d.toString();
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = Line.parse(JSON.parse(buffered.slice(0, nl)));
      buffered = buffered.slice(nl + 1);
      lines.push(line);
      for (const w of [...waiters])
        if (w.match(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
    }
  });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  return {
    proc,
    lines,
    exited,
    stderr: () => err,
    waitFor: (match, timeoutMs = 60_000, since = 0) => {
      const found = lines.slice(since).find(match);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new Error(
                `no matching line in ${timeoutMs} ms; lines: ${lines
                  .map((l) => JSON.stringify(l))
                  .slice(-8)
                  .join('\n')}; stderr: ${err}`,
              ),
            ),
          timeoutMs,
        );
        waiters.push({
          match,
          resolve: (l) => {
            clearTimeout(timer);
            resolve(l);
          },
        });
        void exited.then((code) => {
          clearTimeout(timer);
          reject(new Error(`exited with ${code} before a matching line; stderr: ${err}`));
        });
      });
    },
  };
}

const num = (l: Line, key: string): number => z.number().parse(l[key]);
const str = (l: Line, key: string): string => z.string().parse(l[key]);

/** sha256 of every file under dir, by relative name. */
function checksums(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of readdirSync(dir).sort()) {
    const line = execFileSync('sha256sum', [join(dir, f)], { encoding: 'utf8' });
    out[f] = line.split(' ')[0] ?? '';
  }
  return out;
}

function writeRandom(path: string, mib: number): void {
  execFileSync('dd', ['if=/dev/urandom', `of=${path}`, 'bs=1M', `count=${mib}`, 'conv=fsync', 'status=none']);
}

describe('local btrfs storage moving between two hosts', () => {
  let dir: string;
  let a: Host;
  let b: Host;
  const procs: ChildProcess[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flocker-e2e-local-'));
    const ca = await createClusterCa('local-e2e');
    const host = async (name: string): Promise<Host> => {
      const uuid = randomUUID();
      const certDir = join(dir, `${name}-certs`);
      mkdirSync(certDir);
      const pem = await issueCertificate(ca.pem, { commonName: `node-${uuid}`, role: 'node' });
      writeFileSync(join(certDir, 'cluster.crt'), ca.pem.certificate);
      writeFileSync(join(certDir, 'node.crt'), pem.certificate);
      writeFileSync(join(certDir, 'node.key'), pem.privateKey);
      const pool = makeBtrfsLoopPool(dir, `${name}-pool`, 1536 * MiB);
      const engine = new BtrfsEngine({ pool: pool.pool });
      await engine.prepare();
      return { name, pool, engine, certDir, uuid, mountRoot: join(dir, `${name}-mnt`) };
    };
    a = await host('a');
    b = await host('b');
  });

  afterEach(() => {
    for (const p of procs.splice(0)) if (p.exitCode === null) p.kill('SIGKILL');
  });

  afterAll(() => {
    b?.pool.destroy();
    a?.pool.destroy();
    if (dir !== undefined) removeTree(dir);
  });

  const serve = async (h: Host, port = 0): Promise<{ node: NodeProc; port: number }> => {
    const node = startNode(['serve', h.pool.pool, h.certDir, String(port), h.mountRoot]);
    procs.push(node.proc);
    const line = await node.waitFor((l) => l.event === 'listening');
    return { node, port: num(line, 'port') };
  };
  const move = (
    from: Host,
    to: Host,
    datasetId: string,
    port: number,
    catchUpMs = 2000,
    keepSourceSnapshots?: number,
  ): NodeProc => {
    const node = startNode([
      'move',
      from.pool.pool,
      from.certDir,
      datasetId,
      String(SIZE),
      String(port),
      to.uuid,
      String(catchUpMs),
      ...(keepSourceSnapshots !== undefined ? [String(keepSourceSnapshots)] : []),
    ]);
    procs.push(node.proc);
    return node;
  };
  const newDataset = async (h: Host, mib: number): Promise<{ id: string; path: string }> => {
    const id = randomUUID();
    await h.engine.createDataset(id, SIZE);
    const path = join(h.mountRoot, id);
    await h.engine.mount(id, path);
    if (mib > 0) writeRandom(join(path, 'initial'), mib);
    return { id, path };
  };

  it('moves while a writer in its own mount namespace runs (phase 1), then the final delta once it lets go; every byte verified', async () => {
    const { id, path } = await newDataset(a, 96);
    const { port } = await serve(b);
    // The writer, as a container would: its own mount namespace holding the volume, 1-MiB files fsynced (≤ 10 MiB/s) until stopped.
    const writer = spawn('unshare', [
      '-m',
      '--propagation',
      'private',
      'sh',
      '-c',
      `i=0; while :; do dd if=/dev/urandom of=${path}/w$i bs=1M count=1 conv=fsync status=none; i=$((i+1)); sleep 0.1; done`,
    ]);
    procs.push(writer);
    // A catch-up round every second while waiting for the release.
    const mover = move(a, b, id, port, 1000);
    // Phase 1 done: at least the full send and one incremental round while the writer ran.
    await mover.waitFor((l) => l.event === 'progress' && l.phase === 'waitingForRelease');
    expect(mover.lines.filter((l) => l.event === 'sent').length).toBeGreaterThanOrEqual(2);
    // The host lets go (the agent's unmount); the writer's namespace still holds the volume: no phase 2 yet.
    await a.engine.unmount(path);
    await new Promise((r) => setTimeout(r, 1000));
    expect(await a.engine.inUse(id)).toBe(true);
    expect(mover.lines.some((l) => l.event === 'sent' && l.released === true)).toBe(false);
    // The container stops: released, phase 2.
    writer.kill('SIGKILL');
    await new Promise((r) => writer.once('exit', r));
    const result = await mover.waitFor((l) => l.event === 'result');
    expect(await mover.exited).toBe(0);
    // What the writer left, as the source's final snapshot (kept on A) holds it.
    const expected = checksums(a.engine.snapshotPath(id, str(result, 'finalSnapshot')));
    expect(Object.keys(expected).length).toBeGreaterThan(2);
    const sent = mover.lines.filter((l) => l.event === 'sent');
    const final = sent[sent.length - 1]!;
    expect(final.released).toBe(true);
    expect(final.parent).not.toBeNull();
    // The final delta is the writes since the last catch-up round (≤ ~2 s of writing), not the volume (96+ MiB).
    expect(num(final, 'bytes')).toBeLessThan(32 * MiB);
    console.log(
      `local move: ${sent.length} sends (${sent.map((s) => `${Math.round(num(s, 'bytes') / 1024)} KiB`).join(', ')}), unavailable ${Math.round(num(result, 'unavailableMs'))} ms`,
    );
    // Mounted on B with every byte; gone from A but its final snapshot (the base of a move back).
    const target = join(b.mountRoot, id);
    expect(await b.engine.mountPoints(id)).toEqual([target]);
    expect(checksums(target)).toEqual(expected);
    expect((await a.engine.listDatasets()).some((d) => d.datasetId === id)).toBe(false);
    expect((await a.engine.listSnapshots(id)).map((s) => s.name)).toEqual([str(result, 'finalSnapshot')]);
    expect((await b.engine.listDatasets()).find((d) => d.datasetId === id)?.size).toBe(SIZE);

    // And back to A, incrementally from the snapshot both kept.
    const back = await serve(a);
    writeRandom(join(target, 'on-b'), 4);
    const expectedBack = checksums(target);
    await b.engine.unmount(target);
    const mover2 = move(b, a, id, back.port);
    await mover2.waitFor((l) => l.event === 'result');
    const sentBack = mover2.lines.filter((l) => l.event === 'sent');
    expect(sentBack[0]?.parent).toBe(str(result, 'finalSnapshot'));
    expect(sentBack.reduce((n, s) => n + num(s, 'bytes'), 0)).toBeLessThan(16 * MiB);
    expect(checksums(join(a.mountRoot, id))).toEqual(expectedBack);
    await a.engine.unmount(join(a.mountRoot, id));
  });

  it('kill -9 of the target mid-transfer, then of the mover: resumed from the last received snapshot, never from zero', async () => {
    const { id, path } = await newDataset(a, 32);
    const first = await serve(b);
    // Long catch-up interval: the rounds are this test's to cause.
    const mover = move(a, b, id, first.port, 600_000);
    await mover.waitFor((l) => l.event === 'progress' && l.phase === 'waitingForRelease');
    const base = mover.lines.filter((l) => l.event === 'sent').pop()!;
    // Much more data; the mover sends it as the final round once released. Enough that the send still runs
    // when the kill lands (at a few hundred MiB/s a 192-MiB send could finish first).
    writeRandom(join(path, 'big'), 640);
    const expected = checksums(path);
    await a.engine.unmount(path);
    await mover.waitFor((l) => l.event === 'progress' && l.phase === 'final' && num(l, 'currentSendBytes') > 32 * MiB);
    first.node.proc.kill('SIGKILL');
    await first.node.exited;
    await mover.waitFor((l) => l.event === 'retry');
    const retriedAt = mover.lines.length;
    // Nothing half-received stays on B: at most the complete snapshots from before.
    const there = (await b.engine.listSnapshots(id)).map((s) => s.name);
    expect(there).toContain(str(base, 'name'));
    const second = await serve(b, first.port);
    // The resumed send starts from the snapshot B holds; kill the mover in the middle of it too.
    await mover.waitFor(
      (l) => l.event === 'progress' && l.phase === 'final' && num(l, 'currentSendBytes') > 32 * MiB,
      60_000,
      retriedAt,
    );
    mover.proc.kill('SIGKILL');
    await mover.exited;
    const again = move(a, b, id, second.port, 600_000);
    const result = await again.waitFor((l) => l.event === 'result');
    const resumed = again.lines.filter((l) => l.event === 'sent');
    // One send (the final snapshot the killed mover took), incremental from the base B kept.
    expect(resumed.map((s) => s.parent)).toEqual([str(base, 'name')]);
    expect(num(resumed[0]!, 'bytes')).toBeLessThan(700 * MiB);
    expect(str(result, 'finalSnapshot')).toBe(resumed[0]!.name);
    expect(checksums(join(b.mountRoot, id))).toEqual(expected);
    await b.engine.unmount(join(b.mountRoot, id));
  });

  it('SIGSTOP then SIGKILL of the target as the final send begins, restarted: the mover retries (refused connections too) and resumes from the snapshot B holds', async () => {
    const { id, path } = await newDataset(a, 16);
    const first = await serve(b);
    const mover = move(a, b, id, first.port, 600_000);
    await mover.waitFor((l) => l.event === 'progress' && l.phase === 'waitingForRelease');
    const base = mover.lines.filter((l) => l.event === 'sent').pop()!;
    writeRandom(join(path, 'big'), 256);
    const expected = checksums(path);
    await a.engine.unmount(path);
    await mover.waitFor((l) => l.event === 'progress' && l.phase === 'final');
    first.node.proc.kill('SIGSTOP');
    await new Promise((r) => setTimeout(r, 500));
    first.node.proc.kill('SIGKILL');
    await first.node.exited;
    // Refused while B is down (nothing listens on the port): retried, not the end of the move.
    await mover.waitFor((l) => l.event === 'retry' && /ECONNREFUSED/.test(String(l.error)), 30_000);
    expect(mover.proc.exitCode).toBeNull();
    const held = (await b.engine.listSnapshots(id)).map((s) => s.name);
    expect(held[held.length - 1]).toBe(str(base, 'name'));
    await serve(b, first.port);
    const result = await mover.waitFor((l) => l.event === 'result', 60_000);
    expect(await mover.exited).toBe(0);
    const sent = mover.lines.filter((l) => l.event === 'sent');
    // The final snapshot went once, incrementally from the base B kept (never from zero).
    expect(sent.filter((l) => l.released === true).map((l) => l.parent)).toEqual([str(base, 'name')]);
    expect(str(result, 'finalSnapshot')).toBe(sent[sent.length - 1]!.name);
    expect(checksums(join(b.mountRoot, id))).toEqual(expected);
    await b.engine.unmount(join(b.mountRoot, id));
  });

  it('retention keep_source_snapshots 0: once B has mounted, nothing of the old copy stays on A', async () => {
    const { id, path } = await newDataset(a, 8);
    const expected = checksums(path);
    await a.engine.unmount(path);
    const { port } = await serve(b);
    const mover = move(a, b, id, port, 2000, 0);
    await mover.waitFor((l) => l.event === 'result');
    expect(await mover.exited).toBe(0);
    expect(checksums(join(b.mountRoot, id))).toEqual(expected);
    expect(await a.engine.listSnapshots(id)).toEqual([]);
    expect(await a.engine.listRetained()).not.toContain(id);
    expect((await a.engine.listDatasets()).some((d) => d.datasetId === id)).toBe(false);
    await b.engine.unmount(join(b.mountRoot, id));
  });

  it('a corrupt or truncated stream never becomes a snapshot; the intact one does', async () => {
    const { id, path } = await newDataset(a, 8);
    await a.engine.unmount(path);
    const snap = await a.engine.createSnapshot(id, 'move-000001');
    const chunks: Buffer[] = [];
    const send = a.engine.send(id, 'move-000001', null);
    for await (const c of send.stream as AsyncIterable<Buffer>) chunks.push(c);
    await send.done;
    const whole = Buffer.concat(chunks);
    const corrupt = Buffer.from(whole);
    corrupt[Math.floor(corrupt.length / 2)]! ^= 0xff;
    await expect(b.engine.receive(id, 'move-000001', snap.identity, Readable.from([corrupt]))).rejects.toMatchObject({
      code: 'TRANSFER_FAILED',
    });
    await expect(
      b.engine.receive(id, 'move-000001', snap.identity, Readable.from([whole.subarray(0, whole.length - 1000)])),
    ).rejects.toMatchObject({ code: 'TRANSFER_FAILED' });
    expect(await b.engine.listSnapshots(id)).toEqual([]);
    expect(readdirSync(b.engine.snapshotDir(id))).toEqual([]);
    const got = await b.engine.receive(id, 'move-000001', snap.identity, Readable.from([whole]));
    expect(got.identity).toBe(snap.identity);
  });

  it('the size is enforced by the qgroup limit', async () => {
    const id = randomUUID();
    await a.engine.createDataset(id, 16 * MiB);
    const path = join(a.mountRoot, id);
    await a.engine.mount(id, path);
    expect(() => writeRandom(join(path, 'too-big'), 32)).toThrow(/quota|Disk quota exceeded/i);
    await a.engine.unmount(path);
    await a.engine.destroyDataset(id);
    expect((await a.engine.listDatasets()).some((d) => d.datasetId === id)).toBe(false);
  });

  // The engine contract on these two hosts' pools (ZFS keeps the same one where zfs exists).
  localEngineContract('btrfs', () => ({ a: a.engine, b: b.engine, mountRoot: join(dir, 'contract-mnt') }));
});
