/** The UI server's JSON calls; a failure carries the message to show as is. */
import { UiErrorBody } from '../model/wire';
import { errorMessage } from '@flocker/runtime/browser';

export class ActionFailed extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ActionFailed';
  }
}

async function send(method: 'POST' | 'DELETE', path: string, body?: unknown): Promise<void> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ActionFailed('UI_SERVER_UNREACHABLE', `the flocker ui server did not answer (${errorMessage(e)})`);
  }
  if (res.ok) return;
  const parsed = UiErrorBody.safeParse(await res.json().catch(() => undefined));
  if (parsed.success) throw new ActionFailed(parsed.data.error.code, parsed.data.error.message);
  throw new ActionFailed(`HTTP_${res.status}`, `the request failed with HTTP ${res.status}`);
}

export const api = {
  create: (name: string, size: string, node: string, filesystem: string) =>
    send('POST', '/api/volumes', { name, size, node, filesystem }),
  /** `whenReleased`: local storage (issue 24): copied now while in use, finished once released. */
  move: (id: string, node: string, whenReleased = false) =>
    send(
      'POST',
      `/api/volumes/${encodeURIComponent(id)}/move`,
      whenReleased ? { node, when_released: true } : { node },
    ),
  /** `force`: the user confirmed releasing a lease a live node holds (a container there uses the volume). */
  releaseLease: (id: string, force: boolean) =>
    send('POST', `/api/volumes/${encodeURIComponent(id)}/release-lease`, { force }),
  remove: (id: string) => send('DELETE', `/api/volumes/${encodeURIComponent(id)}`),
  resize: (id: string, size: string) => send('POST', `/api/volumes/${encodeURIComponent(id)}/resize`, { size }),
  /** A blank name is no name. */
  takeSnapshot: (volumeId: string, name: string) =>
    send('POST', `/api/volumes/${encodeURIComponent(volumeId)}/snapshots`, { name }),
  /** A blank size is the snapshot's own. */
  clone: (snapshotId: string, name: string, size: string, node: string) =>
    send('POST', `/api/snapshots/${encodeURIComponent(snapshotId)}/clone`, { name, size, node }),
  /** A blank schedule removes it; a blank keep is the default. */
  setSchedule: (volumeId: string, schedule: string, keep: string) =>
    send('POST', `/api/volumes/${encodeURIComponent(volumeId)}/snapshot-schedule`, { schedule, keep }),
  removeSnapshot: (snapshotId: string) => send('DELETE', `/api/snapshots/${encodeURIComponent(snapshotId)}`),
};
