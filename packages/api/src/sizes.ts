/** Sizes as people write them ("10G", "512MiB") and read them ("10 GiB"). */

// Types only (erased) and localView (itself free of runtime imports): a browser bundle can take this module (web-ui).
import { holderOf } from './localView';
import type { ClusterSnapshot, DatasetConfiguration } from './schemas';

// As in the original Flocker, every unit is binary: 10G = 10GB = 10GiB = 10 * 2^30 bytes.
const UNITS: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1024 ** 4,
  tib: 1024 ** 4,
  // formatSize prints PiB, so it parses too; sizes above ~8 PiB are not safe integers and are refused as too large.
  p: 1024 ** 5,
  pb: 1024 ** 5,
  pib: 1024 ** 5,
  // Never a safe integer: known only so that "8E" is refused as too large, not as "not understood".
  e: 1024 ** 6,
  eb: 1024 ** 6,
  eib: 1024 ** 6,
};
const SIZE = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/;

export class SizeError extends Error {
  readonly code = 'INVALID_SIZE';
  constructor(message: string) {
    super(message);
    this.name = 'SizeError';
  }
}

/** Parse "10G", "512MiB", "100KiB", "1.5GiB" or a byte count; `minimum` bytes at least. */
export function parseSize(text: string, minimum = 0): number {
  const hint = 'use a number of bytes or a number with a unit such as 512MiB, 10G or 1TiB';
  const m = SIZE.exec(text.trim());
  const unit = m ? UNITS[(m[2] ?? '').toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new SizeError(`size "${text}" is not understood: ${hint}.`);
  const bytes = Math.floor(Number(m[1]) * unit);
  if (!Number.isSafeInteger(bytes))
    throw new SizeError(`size "${text}" is too large: at most ${formatSize(Number.MAX_SAFE_INTEGER)}.`);
  if (bytes < minimum) throw new SizeError(`size "${text}" is too small: at least ${formatSize(minimum)}.`);
  return bytes;
}

/** 10737418240 → "10 GiB"; 1610612736 → "1.5 GiB"; 1000 → "1000 B". */
export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  const text = i === 0 || Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 2 : 1).replace(/\.?0+$/, '');
  return `${text} ${units[i]}`;
}

/**
 * The size a volume really has (s23 USER-T F8). The API takes any whole number of bytes from 64 MiB (Kubernetes'
 * Flocker plugins pass a claim's bytes as they are: "1G" is 10^9), and a node rounds it up to its backend's allocation
 * unit (1 MiB on loopback, 1 GiB on EBS or Cinder), as Flocker v1's block-device backends did: 67108865 bytes asked
 * for are a 65 MiB device. So: the block device `device` (its node's report) when larger than the size asked for, else
 * that size; null when neither is known. (A smaller device is a grow on its way: the size asked for.) One rule for
 * every place that shows a size: the CLI, the web UI and the Docker plugin's `docker volume inspect`.
 */
export function realSize(asked: number | null | undefined, device: number | null | undefined): number | null {
  if (asked == null) return device ?? null;
  return device != null && device > asked ? device : asked;
}

/**
 * The block device of `d` as the node whose copy describes the volume reports it (holderOf: its primary when that
 * has one, else the node still holding it, e.g. the old node of a move the new primary has not reported yet); null
 * before one has it. The CLI's `volumes list/show` describe a volume by the same copy: the Docker plugin's Get read
 * the new primary alone and showed the size asked for (64 MiB) where the CLI showed the old node's device (65, W6).
 */
export function deviceSize(
  s: Pick<ClusterSnapshot, 'nodes'>,
  d: Pick<DatasetConfiguration, 'dataset_id' | 'primary'>,
): number | null {
  const m = holderOf(s, d)?.manifestations.find((x) => x.dataset_id === d.dataset_id);
  return m?.size ?? null;
}
