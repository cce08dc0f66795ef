/**
 * The one rule for volume names (metadata.name), shared by the Docker plugin, the CLI
 * and the web UI: Docker's own (daemon/names.go RestrictedNamePattern,
 * `[a-zA-Z0-9][a-zA-Z0-9_.-]+`), at most as long as a metadata value. A name that
 * breaks it can neither be created nor used to look a volume up; in particular the
 * empty name never matches anything. Depends on zod only, so a browser bundle can
 * import it (`@flocker/api/volumeNames`).
 */
import { z } from 'zod';
import { METADATA_MAX_LENGTH } from './schemas';

export const VOLUME_NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
export const VOLUME_NAME_MAX_LENGTH = METADATA_MAX_LENGTH;

/** Why `name` is not a volume name, in a sentence; undefined when it is one. */
export function volumeNameProblem(name: string): string | undefined {
  if (name.trim() === '') return 'a volume needs a name';
  if (!VOLUME_NAME_PATTERN.test(name)) {
    return `"${name}" is not a valid volume name: use at least two characters from [a-zA-Z0-9_.-], starting with a letter or digit.`;
  }
  if (name.length > VOLUME_NAME_MAX_LENGTH)
    return `The volume name is longer than ${VOLUME_NAME_MAX_LENGTH} characters.`;
  return undefined;
}

export function isVolumeName(name: string): boolean {
  return volumeNameProblem(name) === undefined;
}

/** The rule as a zod schema (the message is volumeNameProblem's). */
export const VolumeName = z.string().superRefine((name, ctx) => {
  const problem = volumeNameProblem(name);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
});

/** A full dataset id's shape (any UUID, any case): how the CLI and the UI tell an id from a name. */
export const UUID_SHAPED = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Why `name` may not be given to a new volume; undefined when it may. Stricter than volumeNameProblem by one rule:
 * no UUID-shaped name, since one that is (or becomes) another volume's id makes every command taking "a name or an
 * id" ambiguous (review TN F1). Existing volumes with such a name stay usable: lookups keep volumeNameProblem.
 */
export function newVolumeNameProblem(name: string): string | undefined {
  const problem = volumeNameProblem(name);
  if (problem !== undefined) return problem;
  return idShapedNameProblem('volume', name);
}

/**
 * Why `name` may not be given to a new snapshot; undefined when it may. Snapshot names are otherwise free text, but a
 * UUID-shaped one is refused for the reason newVolumeNameProblem gives: commands take a snapshot's name or its id
 * (review R2-1). Existing snapshots with such a name stay usable by name where it is no other snapshot's id.
 */
export function newSnapshotNameProblem(name: string): string | undefined {
  return idShapedNameProblem('snapshot', name.trim());
}

/**
 * The one rule the control service itself applies to a new name (a dataset's or a snapshot's metadata `name`, by any
 * client: the v1 API leaves names free text otherwise), and the sentence every front end shows for it: no name shaped
 * like an id. Undefined when `name` is not UUID-shaped.
 */
export function idShapedNameProblem(kind: 'volume' | 'snapshot', name: string): string | undefined {
  if (!UUID_SHAPED.test(name)) return undefined;
  return `"${name}" is shaped like a ${kind} id: a new ${kind}'s name cannot be, since commands take a ${kind}'s name or its id. Choose another name.`;
}
