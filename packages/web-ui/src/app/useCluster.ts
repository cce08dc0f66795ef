/** The cluster as the UI server pushes it (server-sent events), validated on arrival. */
import { useEffect, useState } from 'react';
import type { UiEvent } from '../model/events';
import { UiMessage, type ControlStatus } from '../model/wire';
import type { ClusterView } from '../model/view';

const FEED_LIMIT = 200;

export interface ClusterStream {
  view: ClusterView | null;
  events: UiEvent[];
  control: ControlStatus | null;
  started: string | null;
  /** Whether the browser's own stream to the UI server is open. */
  online: boolean;
  /**
   * The UI server refused the stream (401: no session cookie — `flocker ui` restarted with a new token, or the page
   * was opened without it); the browser does not retry a refused stream, so the user must open the printed address.
   */
  locked: boolean;
}

export function useCluster(): ClusterStream {
  const [state, setState] = useState<ClusterStream>({
    view: null,
    events: [],
    control: null,
    started: null,
    online: false,
    locked: false,
  });
  useEffect(() => {
    const source = new EventSource('/api/events');
    source.onopen = () => setState((s) => ({ ...s, online: true }));
    source.onerror = () => setState((s) => ({ ...s, online: false, locked: source.readyState === EventSource.CLOSED }));
    source.onmessage = (e: MessageEvent<string>) => {
      const parsed = UiMessage.safeParse(JSON.parse(e.data));
      if (!parsed.success) return;
      const m = parsed.data;
      setState((s) => {
        // After a reconnect the server resends its backlog: keep each event once.
        const known = new Set(s.events.map((x) => x.id));
        const events = [...s.events, ...m.events.filter((x) => !known.has(x.id))].slice(-FEED_LIMIT);
        return {
          view: m.view ?? s.view,
          events,
          control: m.control,
          started: m.started,
          online: true,
          locked: false,
        };
      });
    };
    return () => source.close();
  }, []);
  return state;
}
