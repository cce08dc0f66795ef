/** What travels between the `flocker ui` server and the browser (both validate it). */
import { z } from 'zod';
import { UiEvent } from './events';
import { ClusterView } from './view';

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

export const VOLUME_NAME_MAX = 256;

export const CreateVolumeBody = z.object({
  name: z.string().trim().min(1, { message: 'a volume needs a name' }).max(VOLUME_NAME_MAX),
  size: z.string().min(1, { message: 'give a size such as 1GiB' }),
  node: z.string().min(1, { message: 'choose a node' }),
});
export type CreateVolumeBody = z.infer<typeof CreateVolumeBody>;

export const MoveVolumeBody = z.object({ node: z.string().min(1, { message: 'choose a node' }) });
export type MoveVolumeBody = z.infer<typeof MoveVolumeBody>;

/** Every failed UI server call answers with this; `message` is shown to the user as is. */
export const UiErrorBody = z.object({ error: z.object({ code: z.string(), message: z.string() }) });
export type UiErrorBody = z.infer<typeof UiErrorBody>;
