/**
 * The one rule for a new volume's storage profile (metadata clusterhq:flocker:profile), shared by
 * the CLI and the Docker plugin (the web UI's create form takes none): the names the node's
 * backend knows. The control API itself stays permissive (Flocker 1.x stored any profile).
 * Pure, no imports: a browser bundle can use it too.
 */

/**
 * Profiles every backend knows: EBS maps gold → io2, silver → gp3, bronze → sc1 (storage-drivers
 * ebs/profiles.ts; anything else would silently be gp3); loopback, local storage and XtremIO (no
 * tiers) record them.
 */
export const STORAGE_PROFILES = ['gold', 'silver', 'bronze'] as const;
export type StorageProfile = (typeof STORAGE_PROFILES)[number];

/**
 * Backends (a node report's `backend`) where any name may be a profile: Cinder maps one to a volume
 * type (profile_volume_types, else the type of that name); ScaleIO to a storage pool by its agent.yml
 * profile_storage_pools, whose keys are any names (its driver refuses one it has no pool for).
 */
export const ANY_PROFILE_BACKENDS: readonly string[] = ['openstack', 'scaleio'];

/** The sentence for a profile the backend does not know. */
export function unknownStorageProfileMessage(text: string): string {
  return (
    `unknown storage profile "${text}": use ${STORAGE_PROFILES.slice(0, -1).join(', ')} or ${STORAGE_PROFILES.at(-1)}` +
    ' (on Cinder nodes, also a Cinder volume type; on ScaleIO nodes, a profile of its profile_storage_pools)'
  );
}

/**
 * The profile to store for a new volume on a node with this backend (undefined: not known): gold,
 * silver or bronze in lower case, or on Cinder and ScaleIO the name as given (trimmed); else why not.
 */
export function storageProfileFor(
  text: string,
  backend: string | undefined,
): { profile: string } | { problem: string } {
  const p = text.trim().toLowerCase();
  const known = STORAGE_PROFILES.find((x) => x === p);
  if (known !== undefined) return { profile: known };
  if (backend !== undefined && ANY_PROFILE_BACKENDS.includes(backend) && text.trim() !== '')
    return { profile: text.trim() };
  return { problem: unknownStorageProfileMessage(text) };
}
