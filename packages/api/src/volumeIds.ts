/**
 * The dataset id of a volume created by name (the Docker plugin's Create, the CSI
 * driver's CreateVolume): a name-based UUID (version 5, RFC 9562) of the name. Both
 * front ends use this one rule, so a Docker volume and a CSI volume of one name are
 * one dataset, and two creators of one new name at once (two plugins, two controller
 * replicas) ask for the same id: the control service's 409 on a taken id lets exactly
 * one win.
 */
import { createHash } from 'node:crypto';

/** Fixed: changing it would change every id. */
const VOLUME_ID_NAMESPACE = 'bd85c98e-bade-4abc-8617-d11353f57b90';

export function volumeDatasetId(name: string): string {
  const ns = Buffer.from(VOLUME_ID_NAMESPACE.replace(/-/g, ''), 'hex');
  const b = createHash('sha1').update(ns).update(name, 'utf8').digest().subarray(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x50; // version 5
  b[8] = (b[8]! & 0x3f) | 0x80; // RFC 9562 variant
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
