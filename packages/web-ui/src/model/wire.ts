/** What travels between the `flocker ui` server and the browser (both validate it). */
import { z } from 'zod';
// The one volume-name rule (the Docker plugin's), from its zod-only module: no Node code in the browser bundle.
import { newSnapshotNameProblem, VOLUME_NAME_MAX_LENGTH, VolumeName } from '@flocker/api/volumeNames';
import { UiEvent } from './events';
import { DATASET_FILESYSTEMS, METADATA_MAX_LENGTH } from '@flocker/api/schemas';
import { ClusterView } from './view';
import { MINIMUM_DATASET_SIZE, parseSize, SizeError } from './sizes';

export const ControlStatus = z.object({
  url: z.string(),
  connected: z.boolean(),
  error: z.string().nullable(),
});
export type ControlStatus = z.infer<typeof ControlStatus>;

/** One server-sent message: the current view and the events since the previous message (on connect: the backlog). */
export const UiMessage = z.object({
  view: ClusterView.nullable(),
  events: z.array(UiEvent),
  control: ControlStatus,
  /** When the UI server started: volumes without first_seen are at least this old. */
  started: z.string(),
});
export type UiMessage = z.infer<typeof UiMessage>;

export const VOLUME_NAME_MAX = VOLUME_NAME_MAX_LENGTH;

/**
 * A field the body lacks is named as the form asks for it, not as zod's "expected string, received undefined"
 * (review T2 F9e); a field of another type keeps zod's words (the UI server names the field).
 */
const given = (missing: string) => (iss: { input: unknown }) => (iss.input === undefined ? missing : undefined);

/**
 * A new volume's size as people write it, judged with the other fields (review T2 F9e: it was judged only once the
 * node was valid, so one refusal hid the next); its message is parseSize's, as the page shows it.
 */
const NewVolumeSize = z
  .string({ error: given('give a size such as 1GiB') })
  .trim()
  .min(1, { message: 'give a size such as 1GiB' })
  .superRefine((size, ctx) => {
    if (size === '') return;
    try {
      parseSize(size, MINIMUM_DATASET_SIZE);
    } catch (e) {
      if (!(e instanceof SizeError)) throw e;
      ctx.addIssue({ code: 'custom', message: e.message });
    }
  });

export const CreateVolumeBody = z.object({
  name: z.string({ error: given('a volume needs a name') }).pipe(VolumeName),
  size: NewVolumeSize,
  node: z.string({ error: given('choose a node') }).min(1, { message: 'choose a node' }),
  /** Recorded in the volume's metadata when given; absent: the agents' default, ext4. */
  filesystem: z.enum(DATASET_FILESYSTEMS).optional(),
});
export type CreateVolumeBody = z.infer<typeof CreateVolumeBody>;

export const MoveVolumeBody = z.object({
  node: z.string({ error: given('choose a node') }).min(1, { message: 'choose a node' }),
  /** Local storage (issue 24): copy now while the volume stays in use, finish once released (the API's when_released). */
  when_released: z.boolean().optional(),
});
export type MoveVolumeBody = z.infer<typeof MoveVolumeBody>;

/** A volume's new size as people write it; it grows, never shrinks (the API refuses a smaller one). */
export const ResizeVolumeBody = z.object({ size: z.string().trim().min(1, { message: 'give a size such as 1GiB' }) });
export type ResizeVolumeBody = z.infer<typeof ResizeVolumeBody>;

/**
 * A snapshot of a volume; a blank name is no name (the snapshot is then known by its id). A UUID-shaped name is
 * refused (review R2-1: it would make "name or id" ambiguous).
 */
export const TakeSnapshotBody = z.object({
  name: z
    .string()
    .trim()
    .max(METADATA_MAX_LENGTH, { message: `snapshot names are at most ${METADATA_MAX_LENGTH} characters` })
    .superRefine((name, ctx) => {
      const problem = newSnapshotNameProblem(name);
      if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
    })
    .optional()
    .transform((n) => (n === '' ? undefined : n)),
});
export type TakeSnapshotBody = z.infer<typeof TakeSnapshotBody>;

/** A new volume holding a snapshot's data; a blank size is the snapshot's own. */
export const CloneSnapshotBody = z.object({
  name: z.string({ error: given('a volume needs a name') }).pipe(VolumeName),
  size: z.string().trim().default(''),
  node: z.string({ error: given('choose a node') }).min(1, { message: 'choose a node' }),
});
export type CloneSnapshotBody = z.infer<typeof CloneSnapshotBody>;

/**
 * A volume's snapshot schedule as typed ("hourly", "daily", "every 15m") and how many scheduled
 * snapshots to keep; a blank schedule removes it, a blank keep is the default (24). The API checks both.
 */
export const SetScheduleBody = z.object({
  schedule: z.string().trim().default(''),
  keep: z.string().trim().default(''),
});
export type SetScheduleBody = z.infer<typeof SetScheduleBody>;

/** `force`: the user confirmed releasing the lease of a volume in use on a live node. */
export const ReleaseLeaseBody = z.object({ force: z.boolean().default(false) });
export type ReleaseLeaseBody = z.infer<typeof ReleaseLeaseBody>;

/** Every failed UI server call answers with this; `message` is shown to the user as is. */
export const UiErrorBody = z.object({ error: z.object({ code: z.string(), message: z.string() }) });
export type UiErrorBody = z.infer<typeof UiErrorBody>;

/**
 * Whether a refusal is about the size a form asked for (so the form marks that field): the UI
 * server's INVALID_SIZE, the API's CLONE_TOO_SMALL or DATASET_SHRINK, or its INVALID_REQUEST
 * naming maximum_size (an xfs volume below 300 MiB).
 */
export function refusesSize(e: { code: string; message: string }): boolean {
  if (['INVALID_SIZE', 'CLONE_TOO_SMALL', 'DATASET_SHRINK'].includes(e.code)) return true;
  return e.code === 'INVALID_REQUEST' && /\bmaximum_size\b/.test(e.message);
}

/**
 * Whether a refused move is the control service's LEASE_HELD that suggests `when_released: true` (a local volume
 * its primary holds the lease on): the page then offers "Move when released". Its other LEASE_HELD answers (a block
 * volume, a lease of another node, a backend not known yet) say why when_released does not apply.
 */
export function offersWhenReleased(e: { code: string; message: string }): boolean {
  return e.code === 'LEASE_HELD' && /\bwhen_released: true\b/.test(e.message);
}
