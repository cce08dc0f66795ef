#!/usr/bin/env node
/**
 * Benchmark: backup and restore throughput of a sparse volume image holding data, against moto's S3 server,
 * versus a raw upload (and download) of the same bytes with one PutObject (GetObject) per 4 MiB to the same
 * server — what `aws s3 cp` of the image would send — and the size of an incremental backup after changing 1%.
 *
 *   node packages/backup/dist/bench/bench.js [--out bench.json] [--size-mib 1024] [--data-percent 50]
 *
 * Prints a markdown section on stdout. Needs moto (scripts/moto.sh installs it); no root.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { startMoto } from '@flocker/storage-drivers/testing';
import { backupVolume, DEFAULT_CONCURRENCY } from '../backup';
import { DEFAULT_COMPRESSION } from '../chunks';
import { DEFAULT_CHUNK_SIZE, type Manifest } from '../manifest';
import { forEachIndex } from '../pool';
import { restoreVolume } from '../restore';
import { S3ObjectStore } from '../S3ObjectStore';
import { makeSparseImage, mutateImage, sha256File } from '../testing';

const MiB = 1024 * 1024;
const RAW_PART = 4 * MiB;

interface Row {
  readonly name: string;
  readonly seconds: number;
  /** Logical volume bytes per second. */
  readonly volume_mib_s: number;
  /** Bytes that crossed the network. */
  readonly sent_mib: number;
  readonly peak_rss_mib: number;
}

/** Runs fn, timing it and sampling this process's resident memory (the engine's bounded-memory claim). */
async function measure<T>(fn: () => Promise<T>): Promise<{ value: T; seconds: number; peakRssMiB: number }> {
  let peak = process.memoryUsage().rss;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
  const start = process.hrtime.bigint();
  try {
    const value = await fn();
    return { value, seconds: Number(process.hrtime.bigint() - start) / 1e9, peakRssMiB: peak / MiB };
  } finally {
    clearInterval(sampler);
  }
}

const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

/** Bytes covered by possibly overlapping regions. */
function unionLength(regions: readonly { offset: number; length: number }[]): number {
  let total = 0;
  let end = 0;
  for (const r of [...regions].sort((a, b) => a.offset - b.offset)) {
    const start = Math.max(r.offset, end);
    const stop = r.offset + r.length;
    if (stop > start) total += stop - start;
    end = Math.max(end, stop);
  }
  return total;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      out: { type: 'string' },
      'size-mib': { type: 'string', default: '1024' },
      'data-percent': { type: 'string', default: '50' },
    },
    strict: true,
  });
  const size = Number(values['size-mib']) * MiB;
  const dataPercent = Number(values['data-percent']);
  if (!(size >= 64 * MiB) || !(dataPercent > 0 && dataPercent <= 100))
    throw new Error('bad --size-mib or --data-percent');
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'flocker-backup-bench-'));
  const moto = await startMoto();
  try {
    const store = new S3ObjectStore({
      url: 's3://flocker-bench/backups',
      endpoint: moto.endpoint,
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    });
    await store.s3.send(new CreateBucketCommand({ Bucket: 'flocker-bench' }));
    const image = path.join(dir, 'volume.img');
    // Data in 8 MiB regions of random bytes (incompressible: the worst case for us, the same bytes for the raw copy).
    const regionSize = 8 * MiB;
    const regions = Math.round((size * dataPercent) / 100 / regionSize);
    const placed = await makeSparseImage(image, { size, regions, regionSize, seed: 42 });
    const rows: Row[] = [];
    const row = (name: string, m: { seconds: number; peakRssMiB: number }, sent: number) =>
      rows.push({
        name,
        seconds: round(m.seconds, 2),
        volume_mib_s: round(size / MiB / m.seconds),
        sent_mib: round(sent / MiB),
        peak_rss_mib: round(m.peakRssMiB),
      });

    // Baseline: every byte of the image (holes read as zeros, as `aws s3 cp` sends them), 4 MiB per PutObject.
    const parts = Math.ceil(size / RAW_PART);
    const raw = await measure(async () => {
      const h = await fs.open(image, 'r');
      try {
        await forEachIndex(parts, DEFAULT_CONCURRENCY, async (i) => {
          const buf = Buffer.alloc(Math.min(RAW_PART, size - i * RAW_PART));
          await h.read(buf, 0, buf.length, i * RAW_PART);
          await store.s3.send(
            new PutObjectCommand({ Bucket: 'flocker-bench', Key: `raw/part-${String(i).padStart(6, '0')}`, Body: buf }),
          );
        });
      } finally {
        await h.close();
      }
    });
    row('raw upload: PutObject per 4 MiB, every byte', raw, size);

    const full = await measure(() => backupVolume(image, store, { volumeId: 'bench-vol', snapshotId: 'snap-1' }));
    row('backup, first (full)', full, full.value.stats.uploadedBytes);

    const rawGet = await measure(async () => {
      const h = await fs.open(path.join(dir, 'raw-download.img'), 'w');
      try {
        await forEachIndex(parts, DEFAULT_CONCURRENCY, async (i) => {
          const r = await store.s3.send(
            new GetObjectCommand({ Bucket: 'flocker-bench', Key: `raw/part-${String(i).padStart(6, '0')}` }),
          );
          const body = Buffer.from((await r.Body?.transformToByteArray()) ?? []);
          await h.write(body, 0, body.length, i * RAW_PART);
        });
      } finally {
        await h.close();
      }
    });
    row('raw download: GetObject per 4 MiB, every byte', rawGet, size);
    await fs.rm(path.join(dir, 'raw-download.img'));

    const restoredPath = path.join(dir, 'restored.img');
    const restored = await measure(() => restoreVolume(store, full.value.backupId, restoredPath));
    row('restore (verified, sparse)', restored, restored.value.manifest.stats.uploadedBytes);
    const identical = (await sha256File(restoredPath)) === (await sha256File(image));
    await fs.rm(restoredPath);

    // Incremental after changing 1%: as a few rewritten files (4 contiguous spans inside data) and as
    // scattered page writes (2560 spans of 4 KiB, database-like).
    const changed = Math.round(size / 100);
    const incremental: { pattern: string; changed: number; manifest: Manifest; seconds: number }[] = [];
    let previous = full.value;
    const rnd = createHash('sha256');
    for (const [pattern, spans] of [
      ['4 contiguous spans inside data', 4],
      ['2560 scattered 4 KiB writes', 2560],
    ] as const) {
      const offsets =
        spans === 4
          ? placed.slice(0, 4).map((r) => r.offset + 4096)
          : Array.from({ length: spans }, (_, i) => {
              rnd.update(String(i));
              return Math.floor((size - 4096) * (rnd.copy().digest().readUInt32BE(0) / 2 ** 32));
            });
      await mutateImage(image, { bytes: changed, regions: spans, offsets });
      const inc = await measure(() =>
        backupVolume(image, store, { volumeId: 'bench-vol', snapshotId: `snap-${spans}`, previous }),
      );
      incremental.push({ pattern, changed, manifest: inc.value, seconds: inc.seconds });
      previous = inc.value;
    }

    const report = {
      size_bytes: size,
      random_bytes: unionLength(placed),
      data_bytes: full.value.stats.dataBytes,
      chunk_size: DEFAULT_CHUNK_SIZE,
      compression: DEFAULT_COMPRESSION,
      concurrency: DEFAULT_CONCURRENCY,
      moto: moto.version,
      restore_identical: identical,
      results: rows,
      ratios: {
        backup_vs_raw_upload_time: round(full.seconds / raw.seconds, 3),
        restore_vs_raw_download_time: round(restored.seconds / rawGet.seconds, 3),
      },
      incremental: incremental.map((i) => ({
        pattern: i.pattern,
        changed_bytes: i.changed,
        uploaded_bytes: i.manifest.stats.uploadedBytes,
        uploaded_chunks: i.manifest.stats.uploadedChunks,
        ratio: round(i.manifest.stats.uploadedBytes / i.changed, 2),
        seconds: round(i.seconds, 2),
      })),
      targets: { incremental_ratio: 2 },
    };
    if (values.out !== undefined) await fs.writeFile(values.out, JSON.stringify(report, null, 2) + '\n');
    process.stdout.write(renderMarkdown(report));
  } finally {
    await moto.stop();
    await fs.rm(dir, { recursive: true, force: true });
  }
}

function renderMarkdown(r: {
  size_bytes: number;
  random_bytes: number;
  data_bytes: number;
  chunk_size: number;
  compression: string;
  concurrency: number;
  moto: string;
  restore_identical: boolean;
  results: Row[];
  ratios: Record<string, number>;
  incremental: {
    pattern: string;
    changed_bytes: number;
    uploaded_bytes: number;
    uploaded_chunks: number;
    ratio: number;
  }[];
  targets: { incremental_ratio: number };
}): string {
  const mib = (b: number) => round(b / MiB);
  return [
    `A ${mib(r.size_bytes)} MiB sparse image with ${mib(r.random_bytes)} MiB of random (incompressible) data in 8 MiB regions (${mib(r.data_bytes)} MiB in chunks that are not all zeros), to moto ${r.moto}'s S3 over loopback HTTP; ${mib(r.chunk_size)} MiB chunks, ${r.compression}, ${r.concurrency} requests in flight for every row. Restore byte-identical: ${r.restore_identical ? 'yes' : 'NO'}.`,
    '',
    '| Operation | seconds | volume MiB/s | MiB sent | peak RSS MiB |',
    '|---|---|---|---|---|',
    ...r.results.map((x) => `| ${x.name} | ${x.seconds} | ${x.volume_mib_s} | ${x.sent_mib} | ${x.peak_rss_mib} |`),
    '',
    `Backup takes ${r.ratios.backup_vs_raw_upload_time}× the raw upload's time; restore ${r.ratios.restore_vs_raw_download_time}× the raw download's.`,
    '',
    '| Incremental after changing 1% | changed MiB | uploaded MiB | chunks | uploaded / changed | target |',
    '|---|---|---|---|---|---|',
    ...r.incremental.map(
      (i) =>
        `| ${i.pattern} | ${mib(i.changed_bytes)} | ${mib(i.uploaded_bytes)} | ${i.uploaded_chunks} | ${i.ratio} | ≤ ${r.targets.incremental_ratio} ${i.ratio <= r.targets.incremental_ratio ? '(met)' : '(missed)'} |`,
    ),
    '',
  ].join('\n');
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
