import { useEffect, useLayoutEffect, useRef, useState, type FormEvent, type ReactNode } from 'react';
import { volumeNameProblem } from '@flocker/api/volumeNames';
import { DATASET_FILESYSTEMS, formatSize, XFS_MINIMUM_SIZE } from '../model/sizes';
import { defaultCloneNode, groupSnapshots, type SnapshotView } from '../model/snapshots';
import type { UiEvent } from '../model/events';
import { releaseRisk } from '../model/safety';
import { errorReason, nextScheduledAt, stateText, type NodeView, type VolumeView } from '../model/view';
import { leaseRefusalText } from '../model/leaseRefusal';
import { offersWhenReleased, refusesSize, type ControlStatus } from '../model/wire';
import { filterVolumes, listNotice, moveTargets, rowWindow, usedSpace, volumeAge } from '../model/list';
import { keptAsideText, movesWhenReleased, replicaText } from '../model/local';
import { ActionFailed, api } from './api';
import { age, clockTime } from './time';
import { useCluster } from './useCluster';
import { errorMessage } from '@flocker/runtime/browser';

/** Re-render every few seconds so ages and "last seen" stay true without new data. */
function useNow(periodMs: number): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), periodMs);
    return () => clearInterval(t);
  }, [periodMs]);
  return now;
}

const TOAST_MS = 12_000;

export function App() {
  const { view, events, control, started, online, locked } = useCluster();
  // Every second: ages in seconds stay true (a long list renders only its window of rows).
  const now = useNow(1000);
  /** The last refusal, as a toast in the viewport (the row it concerns says it too, beside its buttons). */
  const [actionError, setActionError] = useState<{ key: string; message: string } | null>(null);
  /** Each refused action's message by the key of what it acted on (a volume's or snapshot's id). */
  const [results, setResults] = useState<ReadonlyMap<string, string>>(new Map());
  const [confirming, setConfirming] = useState<VolumeView | null>(null);
  const [releasing, setReleasing] = useState<{ volume: VolumeView; risk: string } | null>(null);
  const [busy, setBusy] = useState<Set<string>>(new Set());
  const [deletingSnapshot, setDeletingSnapshot] = useState<SnapshotView | null>(null);
  const [cloning, setCloning] = useState<SnapshotView | null>(null);
  const [resizing, setResizing] = useState<VolumeView | null>(null);
  /** Moves refused with a LEASE_HELD that suggests when_released: the target to offer "Move when released" for, by volume id. */
  const [whenReleasedOffers, setWhenReleasedOffers] = useState<ReadonlyMap<string, string>>(new Map());

  /** Runs an action; a failure shows in the banner. Resolves to whether it succeeded. */
  const act = async (key: string, run: () => Promise<void>): Promise<boolean> => {
    setBusy((b) => new Set(b).add(key));
    setActionError(null);
    setResults((r) => withResult(r, key, null));
    try {
      await run();
      return true;
    } catch (e) {
      const message = e instanceof ActionFailed ? leaseRefusalText(e) : errorMessage(e);
      setActionError({ key, message });
      setResults((r) => withResult(r, key, message));
      return false;
    } finally {
      setBusy((b) => {
        const n = new Set(b);
        n.delete(key);
        return n;
      });
    }
  };

  // The toast goes after a while; the row keeps saying it until its next action or Dismiss.
  useEffect(() => {
    if (actionError === null) return;
    const t = setTimeout(() => setActionError((e) => (e === actionError ? null : e)), TOAST_MS);
    return () => clearTimeout(t);
  }, [actionError]);

  const nodes = view?.nodes ?? [];
  const volumes = view?.volumes ?? [];
  const snapshots = groupSnapshots(view?.snapshots ?? [], volumes);
  const snapshotActions: SnapshotActions = {
    onClone: (s) => setCloning(s),
    onDelete: (s) => setDeletingSnapshot(s),
  };
  return (
    <>
      <header className="top">
        <h1>Flocker</h1>
        <p className="connection" role="status">
          {locked ? (
            <span className="bad">
              The flocker ui server did not let this page in: open the address <code>flocker ui</code> printed, with its{' '}
              <code>?token=</code> (it changes each time it starts).
            </span>
          ) : !online ? (
            <span className="bad">Not connected to the flocker ui server; retrying…</span>
          ) : !control ? (
            'Connecting…'
          ) : control.connected ? (
            <span>
              Control service <code>{control.url}</code> <span className="ok">connected</span>
            </span>
          ) : (
            <span className="bad">
              Control service <code>{control.url}</code> unreachable: {control.error}
            </span>
          )}
        </p>
        {/* Locked out, the page knows nothing of the cluster: empty node and volume lists would read as an empty one. */}
        {!locked && <NodeSummary nodes={nodes} stale={control !== null && !control.connected} />}
      </header>
      <main hidden={locked}>
        {actionError && (
          <div className="banner toast" role="alert">
            <span id="action-error">{actionError.message}</span>
            <button type="button" className="link" onClick={() => setActionError(null)}>
              Dismiss
            </button>
          </div>
        )}
        <div className="columns">
          <div className="main-column">
            <VolumesSection
              volumes={volumes}
              nodes={nodes}
              now={now}
              started={started}
              hasView={view !== null}
              control={control}
              results={results}
              onDismissResult={(key) => {
                setResults((r) => withResult(r, key, null));
                setWhenReleasedOffers((o) => withResult(o, key, null));
              }}
              busy={busy}
              whenReleasedOffers={whenReleasedOffers}
              onMove={(v, node, whenReleased) => {
                setWhenReleasedOffers((o) => withResult(o, v.dataset_id, null));
                void act(v.dataset_id, async () => {
                  try {
                    await api.move(v.dataset_id, node, whenReleased);
                  } catch (e) {
                    // A local volume a container on its node uses (issue 24): offer the move that waits for it.
                    if (!whenReleased && e instanceof ActionFailed && offersWhenReleased(e))
                      setWhenReleasedOffers((o) => withResult(o, v.dataset_id, node));
                    throw e;
                  }
                });
              }}
              onRelease={(v) => {
                // A live node holds the lease: a container there uses the volume. Ask first, saying what is at stake.
                const risk = releaseRisk(v, nodes);
                if (risk !== null) setReleasing({ volume: v, risk });
                else void act(v.dataset_id, () => api.releaseLease(v.dataset_id, false));
              }}
              onDelete={(v) => setConfirming(v)}
              onResize={(v) => setResizing(v)}
              snapshots={snapshots}
              snapshotActions={snapshotActions}
              onTakeSnapshot={(v, name) => act(v.dataset_id, () => api.takeSnapshot(v.dataset_id, name))}
              onSetSchedule={(v, schedule, keep) =>
                act(v.dataset_id, () => api.setSchedule(v.dataset_id, schedule, keep))
              }
            />
            <NodesSection nodes={nodes} now={now} />
          </div>
          <FeedSection events={events} />
        </div>
      </main>
      <ConfirmRelease
        pending={releasing}
        onCancel={() => setReleasing(null)}
        onConfirm={(v) => {
          setReleasing(null);
          void act(v.dataset_id, () => api.releaseLease(v.dataset_id, true));
        }}
      />
      <ConfirmDelete
        volume={confirming}
        onCancel={() => setConfirming(null)}
        onConfirm={(v) => {
          setConfirming(null);
          void act(v.dataset_id, () => api.remove(v.dataset_id));
        }}
      />
      <ConfirmDialog
        id="confirm-snapshot"
        subject={deletingSnapshot}
        title={<>Delete snapshot {deletingSnapshot && snapshotLabel(deletingSnapshot)}?</>}
        confirmLabel="Delete snapshot"
        onCancel={() => setDeletingSnapshot(null)}
        onConfirm={(s) => {
          setDeletingSnapshot(null);
          void act(s.snapshot_id, () => api.removeSnapshot(s.snapshot_id));
        }}
      >
        The snapshot <strong>{deletingSnapshot && snapshotLabel(deletingSnapshot)}</strong> of{' '}
        {deletingSnapshot?.volume} will be destroyed on the storage backend. Volumes cloned from it keep their data.
        This cannot be undone.
      </ConfirmDialog>
      <CloneDialog key={cloning?.snapshot_id ?? ''} snapshot={cloning} nodes={nodes} onClose={() => setCloning(null)} />
      <ResizeDialog key={resizing?.dataset_id ?? ''} volume={resizing} onClose={() => setResizing(null)} />
    </>
  );
}

/** `results` with the message of `key`'s last action set (null: cleared). */
function withResult(results: ReadonlyMap<string, string>, key: string, message: string | null) {
  if (message === null && !results.has(key)) return results;
  const next = new Map(results);
  if (message === null) next.delete(key);
  else next.set(key, message);
  return next;
}

/** A sentence for people: capital first letter, full stop at the end. */
function sentence(message: string): string {
  const s = message.trim();
  if (s === '') return s;
  return `${s[0]!.toUpperCase()}${s.slice(1)}${/[.!?]$/.test(s) ? '' : '.'}`;
}

/** Every node at a glance at the top of the page (the Nodes table is further down). */
function NodeSummary({ nodes, stale }: { nodes: NodeView[]; stale: boolean }) {
  if (nodes.length === 0) return null;
  const alive = nodes.filter((n) => n.alive).length;
  return (
    <div className="node-summary" id="node-summary" aria-label="Nodes at a glance">
      <a href="#nodes-h">
        Nodes {alive}/{nodes.length} alive{stale ? ' (last known)' : ''}
      </a>
      <ul>
        {nodes.map((n) => (
          <li key={n.uuid} data-node-summary={n.host} className={n.alive ? 'alive' : 'dead'}>
            {n.host} <span className="state">{n.alive ? 'alive' : 'dead'}</span> · {n.volumes.length} vol
            {n.errors > 0 && ` · ${n.errors} failing`}
          </li>
        ))}
      </ul>
    </div>
  );
}

function CreateVolumeForm({ nodes }: { nodes: NodeView[] }) {
  const alive = nodes.filter((n) => n.alive);
  const [name, setName] = useState('');
  const [size, setSize] = useState('1GiB');
  const [node, setNode] = useState('');
  const [filesystem, setFilesystem] = useState<string>('ext4');
  const [error, setError] = useState<{ code: string; message: string } | null>(null);
  const [sending, setSending] = useState(false);
  const chosen = alive.some((n) => n.uuid === node) ? node : (alive[0]?.uuid ?? '');
  // Mark the field the refusal is about; the message itself is tied to both.
  const badSize = error && refusesSize(error) ? true : undefined;
  const badName = error && !badSize && /\bnamed?\b/i.test(error.message) ? true : undefined;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    // The Docker plugin's name rule (@flocker/api), checked here too so the reason shows at once.
    const nameProblem = volumeNameProblem(name.trim());
    if (nameProblem !== undefined) {
      setError({ code: 'INVALID_NAME', message: nameProblem });
      return;
    }
    setSending(true);
    setError(null);
    try {
      await api.create(name.trim(), size.trim(), chosen, filesystem);
      setName('');
    } catch (err) {
      setError({ code: err instanceof ActionFailed ? err.code : 'ERROR', message: errorMessage(err) });
    } finally {
      setSending(false);
    }
  };

  return (
    <form className="create" onSubmit={(e) => void submit(e)} aria-labelledby="create-h" noValidate>
      <h3 id="create-h">New volume</h3>
      <div className="fields">
        <div className="field">
          <label htmlFor="new-name">Name</label>
          <input
            id="new-name"
            name="name"
            value={name}
            onChange={(e) => setName(e.target.value)}
            required
            autoComplete="off"
            aria-invalid={badName}
            aria-describedby={error ? 'create-error' : undefined}
          />
          {badName && error && <FieldError message={error.message} />}
        </div>
        <div className="field">
          <label htmlFor="new-size">Size</label>
          <input
            id="new-size"
            name="size"
            value={size}
            onChange={(e) => setSize(e.target.value)}
            required
            aria-describedby={error ? 'create-error size-hint' : 'size-hint'}
            aria-invalid={badSize}
          />
          <small id="size-hint">e.g. 512MiB, 10G (at least 64 MiB)</small>
          {badSize && error && <FieldError message={error.message} />}
        </div>
        <div className="field">
          <label htmlFor="new-node">Node</label>
          <select id="new-node" name="node" value={chosen} onChange={(e) => setNode(e.target.value)} required>
            {alive.length === 0 && <option value="">no live node</option>}
            {alive.map((n) => (
              <option key={n.uuid} value={n.uuid}>
                {n.host}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="new-fs">File system</label>
          <select
            id="new-fs"
            name="filesystem"
            value={filesystem}
            onChange={(e) => setFilesystem(e.target.value)}
            aria-describedby="fs-hint"
          >
            {DATASET_FILESYSTEMS.map((f) => (
              <option key={f} value={f}>
                {f}
              </option>
            ))}
          </select>
          <small id="fs-hint">xfs needs at least {formatSize(XFS_MINIMUM_SIZE)}</small>
        </div>
        <button type="submit" disabled={sending || !chosen}>
          {sending ? 'Creating…' : 'Create'}
        </button>
      </div>
      {error && !badName && !badSize && (
        <p className="error" id="create-error" role="alert">
          {sentence(error.message)}
        </p>
      )}
    </form>
  );
}

/** A refusal under the field it is about, in a sentence (`#create-error`). */
function FieldError({ message }: { message: string }) {
  return (
    <p className="error field-error" id="create-error" role="alert">
      {sentence(message)}
    </p>
  );
}

const STATE_LABEL: Record<VolumeView['state'], string> = {
  creating: 'creating',
  attaching: 'attaching',
  mounted: 'mounted',
  moving: 'moving',
  deleting: 'deleting',
  error: 'error',
};

/** A local move's phase in a word or two, beside its bar (the detail line above says it in full). */
const LOCAL_MOVE_PHASE: Record<NonNullable<VolumeView['local_move']>['phase'], string> = {
  copying: 'copying',
  waitingForRelease: 'waiting for release',
  final: 'final delta',
  promoting: 'taking over',
  done: 'done',
};

interface VolumesProps {
  volumes: VolumeView[];
  nodes: NodeView[];
  now: number;
  started: string | null;
  hasView: boolean;
  control: ControlStatus | null;
  /** Refused actions' messages by volume id, shown beside the row's buttons. */
  results: ReadonlyMap<string, string>;
  onDismissResult: (key: string) => void;
  busy: Set<string>;
  /** Local storage (issue 24): `whenReleased` copies now while the volume stays in use and finishes once released. */
  onMove: (v: VolumeView, node: string, whenReleased: boolean) => void;
  /** Moves refused with a LEASE_HELD that suggests when_released: the target node to offer it for, by volume id. */
  whenReleasedOffers: ReadonlyMap<string, string>;
  onRelease: (v: VolumeView) => void;
  onDelete: (v: VolumeView) => void;
  onResize: (v: VolumeView) => void;
  snapshots: ReturnType<typeof groupSnapshots>;
  snapshotActions: SnapshotActions;
  onTakeSnapshot: (v: VolumeView, name: string) => Promise<boolean>;
  onSetSchedule: (v: VolumeView, schedule: string, keep: string) => Promise<boolean>;
}

/** Above this many shown volumes the list renders only the rows near the viewport (issue 21: 1,000 volumes). */
const WINDOW_FROM = 60;
const ESTIMATED_ROW_HEIGHT = 72;

function VolumesSection({
  volumes,
  nodes,
  now,
  started,
  hasView,
  control,
  results,
  onDismissResult,
  busy,
  onMove,
  whenReleasedOffers,
  onRelease,
  onDelete,
  onResize,
  snapshots,
  snapshotActions,
  onTakeSnapshot,
  onSetSchedule,
}: VolumesProps) {
  const [query, setQuery] = useState('');
  const shown = filterVolumes(volumes, query);
  const notice = listNotice(hasView, volumes.length, shown.length, control, query);
  const windowed = shown.length > WINDOW_FROM;
  const rows = useRowWindow(windowed ? shown.map((v) => v.dataset_id) : []);
  const visible = windowed ? shown.slice(rows.window.start, rows.window.end) : shown;
  return (
    <section aria-labelledby="volumes-h">
      <h2 id="volumes-h">
        Volumes{' '}
        <span className="count" data-volume-count={volumes.length}>
          {query.trim() !== '' ? `${shown.length} of ${volumes.length}` : volumes.length}
        </span>
      </h2>
      <CreateVolumeForm nodes={nodes} />
      {notice?.kind === 'stale' && (
        <p className="stale-note" role="status" id="volumes-stale">
          {notice.message}
        </p>
      )}
      {notice?.kind === 'unreachable' ? (
        <p className="empty bad-text" id="volumes-unreachable" role="status">
          {notice.message} The volumes are shown once it answers.
        </p>
      ) : notice?.kind === 'connecting' ? (
        <p className="empty">Connecting to the control service…</p>
      ) : notice?.kind === 'empty' ? (
        <p className="empty">No volumes yet.</p>
      ) : (
        volumes.length > 0 && (
          <>
            <div className="search">
              <label htmlFor="volume-search">Search volumes</label>
              <input
                id="volume-search"
                type="search"
                value={query}
                onChange={(e) => setQuery(e.target.value)}
                autoComplete="off"
                placeholder="name, node or state (node:a state:error)"
                aria-describedby="volume-search-hint"
              />
              <small id="volume-search-hint" className="sub">
                every word must match; name:, node: or state: looks in that field only
              </small>
            </div>
            {notice?.kind === 'no-match' ? (
              <p className="empty">No volume matches “{notice.query}”.</p>
            ) : (
              <table className={`cards volumes${notice?.kind === 'stale' ? ' stale' : ''}`}>
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Size</th>
                    <th scope="col">Primary</th>
                    <th scope="col">State</th>
                    <th scope="col">Lease</th>
                    <th scope="col">Age</th>
                    <th scope="col">Actions</th>
                  </tr>
                </thead>
                <tbody ref={rows.ref} data-windowed={windowed ? `${visible.length}/${shown.length}` : undefined}>
                  {windowed && rows.window.padTop > 0 && (
                    <tr className="spacer" aria-hidden="true">
                      <td colSpan={7} style={{ height: rows.window.padTop }} />
                    </tr>
                  )}
                  {visible.map((v) => (
                    <VolumeRow
                      key={v.dataset_id}
                      v={v}
                      nodes={nodes}
                      now={now}
                      started={started}
                      result={results.get(v.dataset_id) ?? null}
                      onDismissResult={onDismissResult}
                      busy={busy.has(v.dataset_id)}
                      busyKeys={busy}
                      onMove={onMove}
                      whenReleasedOffer={whenReleasedOffers.get(v.dataset_id) ?? null}
                      onRelease={onRelease}
                      onDelete={onDelete}
                      onResize={onResize}
                      snapshots={snapshots.byVolume.get(v.dataset_id) ?? []}
                      snapshotActions={snapshotActions}
                      onTakeSnapshot={onTakeSnapshot}
                      onSetSchedule={onSetSchedule}
                    />
                  ))}
                  {windowed && rows.window.padBottom > 0 && (
                    <tr className="spacer" aria-hidden="true">
                      <td colSpan={7} style={{ height: rows.window.padBottom }} />
                    </tr>
                  )}
                </tbody>
              </table>
            )}
          </>
        )
      )}
      {snapshots.orphans.length > 0 && (
        <div className="orphans">
          <h3 id="orphans-h">Snapshots of deleted volumes</h3>
          <SnapshotList
            snapshots={snapshots.orphans}
            now={now}
            busy={busy}
            showVolume
            labelledBy="orphans-h"
            {...snapshotActions}
          />
        </div>
      )}
    </section>
  );
}

/**
 * The window of a long list's rows that meets the viewport (the page scrolls, not the list):
 * rows' heights are measured once rendered (a row with its snapshot panel open is taller),
 * the others estimated from the first rows measured. The estimate is fixed once taken: were it the
 * average of every row measured so far, measuring a few taller rows at the bottom would resize the
 * spacer of hundreds of unmeasured rows above the viewport, pushing the rows just scrolled to out of
 * it with no scroll event to bring them back (issue 21: scrolled to the bottom of 1,000 volumes after
 * taller ones were measured, the page stayed mid-list).
 */
function useRowWindow(ids: readonly string[]) {
  const ref = useRef<HTMLTableSectionElement>(null);
  const heights = useRef(new Map<string, number>());
  const estimate = useRef<number | undefined>(undefined);
  const [viewport, setViewport] = useState({ top: 0, height: 800 });
  const [measured, setMeasured] = useState(0);
  useEffect(() => {
    if (ids.length === 0) return;
    let frame = 0;
    const update = () => {
      cancelAnimationFrame(frame);
      frame = requestAnimationFrame(() => {
        const body = ref.current;
        if (!body) return;
        const top = -body.getBoundingClientRect().top;
        setViewport((v) =>
          v.top === top && v.height === window.innerHeight ? v : { top, height: window.innerHeight },
        );
      });
    };
    update();
    window.addEventListener('scroll', update, { passive: true });
    window.addEventListener('resize', update);
    return () => {
      cancelAnimationFrame(frame);
      window.removeEventListener('scroll', update);
      window.removeEventListener('resize', update);
    };
  }, [ids.length]);
  useLayoutEffect(() => {
    const body = ref.current;
    if (!body || ids.length === 0) return;
    const sums = new Map<string, number>();
    for (const tr of body.querySelectorAll<HTMLTableRowElement>('tr[data-row-of]')) {
      const id = tr.dataset.rowOf!;
      sums.set(id, (sums.get(id) ?? 0) + tr.getBoundingClientRect().height);
    }
    // Re-render only for rows measured the first time: a table's columns (so its rows' heights) shift with the
    // rows it holds, and re-rendering on every shift could go on for ever. Later heights are used at the next render.
    let fresh = false;
    for (const [id, h] of sums) {
      if (!heights.current.has(id)) fresh = true;
      heights.current.set(id, h);
    }
    if (estimate.current === undefined && sums.size > 0)
      estimate.current = [...sums.values()].reduce((a, b) => a + b, 0) / sums.size;
    if (fresh) setMeasured((m) => m + 1);
  });
  const unmeasured = estimate.current ?? ESTIMATED_ROW_HEIGHT;
  const window_ = rowWindow(
    ids.map((id) => heights.current.get(id) ?? unmeasured),
    viewport.top,
    viewport.height,
    8,
  );
  void measured; // its change re-renders with the new heights
  return { ref, window: window_ };
}

function VolumeRow({
  v,
  nodes,
  now,
  started,
  result,
  onDismissResult,
  busy,
  busyKeys,
  onMove,
  whenReleasedOffer,
  onRelease,
  onDelete,
  onResize,
  snapshots,
  snapshotActions,
  onTakeSnapshot,
  onSetSchedule,
}: Omit<VolumesProps, 'volumes' | 'busy' | 'snapshots' | 'hasView' | 'control' | 'results' | 'whenReleasedOffers'> & {
  v: VolumeView;
  result: string | null;
  /** The target of a move refused with a LEASE_HELD that suggests when_released, to offer it; null otherwise. */
  whenReleasedOffer: string | null;
  busy: boolean;
  busyKeys: Set<string>;
  snapshots: SnapshotView[];
}) {
  const targets = moveTargets(v, nodes);
  const [target, setTarget] = useState('');
  const [whenReleased, setWhenReleased] = useState(false);
  const local = movesWhenReleased(v, nodes);
  const [open, setOpen] = useState(false);
  const panelId = `snapshots-${v.dataset_id}`;
  const chosen = targets.some((n) => n.uuid === target) ? target : (targets[0]?.uuid ?? '');
  const deleting = v.state === 'deleting';
  const selectId = `move-${v.dataset_id}`;
  return (
    <>
      <tr data-volume={v.name} data-state={v.state} data-row-of={v.dataset_id}>
        <th scope="row" data-label="Name">
          {v.name}
          <div className="sub" title={v.dataset_id}>
            {v.dataset_id.slice(0, 8)}
          </div>
        </th>
        <td data-label="Size">
          <span className="size">{v.size === null ? '—' : formatSize(v.size)}</span>
          <UsedSpace v={v} />
          <div className="sub" data-filesystem={v.filesystem} title="file system">
            {v.filesystem}
            {v.cloned_from !== null && ` · clone of ${v.cloned_from}`}
          </div>
          {v.resizing && (
            <div className="sub" data-resizing={v.resizing.to}>
              growing to {formatSize(v.resizing.to)} (now {formatSize(v.resizing.from)})
            </div>
          )}
          {v.grow_pending !== undefined && (
            <div className="sub grow-pending" data-grow-pending title="the grow waits until the volume is unused">
              {v.grow_pending}
            </div>
          )}
        </td>
        <td data-label="Primary" className="primary">
          {v.primary.host ?? v.primary.uuid.slice(0, 8)}
          {v.replica !== null && (
            <div
              className="sub"
              data-replica={v.replica.host}
              title="standby replica: its age is what a failover loses"
            >
              {replicaText(v.replica, now)}
            </div>
          )}
        </td>
        <td data-label="State" title={stateText(v)} data-state-text={stateText(v)}>
          <span className={`badge state-${v.state}`}>{STATE_LABEL[v.state]}</span>
          {v.kept_aside.length > 0 && (
            <>
              {' '}
              <span
                className="badge kept-aside"
                data-kept-aside={v.kept_aside.length}
                title="a node kept a copy aside holding writes the live copy lacks: see below"
              >
                kept aside
              </span>
            </>
          )}
          {v.state === 'mounted' ? (
            <div className="sub detail path" title={v.path ?? undefined}>
              {v.path}
            </div>
          ) : (
            <div className="sub detail">
              {v.state === 'error' || v.state === 'deleting' ? `${v.state}: ` : ''}
              {v.detail}
            </div>
          )}
          {v.local_move !== null && (
            <div className="sub local-move" data-local-move={v.local_move.phase} title="local storage: move progress">
              {v.local_move.percent !== null && (
                <meter min={0} max={100} value={v.local_move.percent} aria-label="sent" />
              )}{' '}
              {LOCAL_MOVE_PHASE[v.local_move.phase]}
              {v.local_move.percent !== null && ` ${v.local_move.percent}%`}
            </div>
          )}
          {v.kept_aside.map((k) => (
            <div key={`${k.node_uuid} ${k.path}`} className="sub detail kept-aside" data-kept-aside-on={k.host}>
              {keptAsideText(k)}
            </div>
          ))}
          {v.state !== 'error' && v.state !== 'deleting' && v.errors[0] && (
            <div className="sub detail failing">error: {errorReason(v.errors[0])}</div>
          )}
        </td>
        <td data-label="Lease">
          {v.lease ? `held by ${v.lease.host ?? v.lease.node_uuid.slice(0, 8)}` : '—'}
          {v.lease?.on_request !== undefined && <div className="sub">{v.lease.on_request}</div>}
        </td>
        <td data-label="Age" className="age" title={volumeAge(v, started, now).title}>
          <span className="age-text">{volumeAge(v, started, now).text}</span>
        </td>
        <td data-label="Actions" className="actions">
          {result !== null && (
            <div className="row-result" role="alert" data-action-error>
              <span>{result}</span>{' '}
              {whenReleasedOffer !== null && (
                <button
                  type="button"
                  data-offer="when-released"
                  onClick={() => onMove(v, whenReleasedOffer, true)}
                  disabled={busy}
                  aria-label={`When released, move ${v.name} to ${nodes.find((n) => n.uuid === whenReleasedOffer)?.host ?? whenReleasedOffer.slice(0, 8)}`}
                  title="Copy the data now while it stays in use; the move finishes once its users there let it go (e.g. docker stop)"
                >
                  Move when released
                </button>
              )}{' '}
              <button
                type="button"
                className="link"
                onClick={() => onDismissResult(v.dataset_id)}
                aria-label={`Clear the message about ${v.name}`}
              >
                ✕
              </button>
            </div>
          )}
          {!deleting && (
            <>
              {/* No Move control where there is nowhere to move to (a one-node cluster, the others dead). */}
              {targets.length > 0 && (
                <span className="move">
                  <label htmlFor={selectId} className="visually-hidden">
                    Move {v.name} to
                  </label>
                  <select id={selectId} value={chosen} onChange={(e) => setTarget(e.target.value)} disabled={busy}>
                    {targets.map((n) => (
                      <option key={n.uuid} value={n.uuid}>
                        {n.host}
                      </option>
                    ))}
                  </select>
                  <button
                    type="button"
                    onClick={() => onMove(v, chosen, local && whenReleased)}
                    disabled={busy || !chosen}
                    aria-label={`Move ${v.name}`}
                  >
                    Move
                  </button>
                  {/* Local storage (issue 24): a volume in use on its node moves once released (the CLI's --when-released). */}
                  {local && (
                    <label
                      className="when-released"
                      title="Local storage: copy the data now while the volume stays in use here; the move finishes once its users let it go (e.g. docker stop)"
                    >
                      <input
                        type="checkbox"
                        checked={whenReleased}
                        onChange={(e) => setWhenReleased(e.target.checked)}
                        disabled={busy}
                        aria-label={`Move ${v.name} when released`}
                      />{' '}
                      when released
                    </label>
                  )}
                </span>
              )}
              {v.lease && (
                <button
                  type="button"
                  onClick={() => onRelease(v)}
                  disabled={busy}
                  aria-label={`Release the lease on ${v.name}`}
                >
                  Release lease
                </button>
              )}
              <button
                type="button"
                className="secondary"
                onClick={() => setOpen((o) => !o)}
                aria-expanded={open}
                aria-controls={open ? panelId : undefined}
              >
                Snapshots<span className="visually-hidden"> of {v.name}</span> ({snapshots.length})
              </button>
              <button
                type="button"
                className="secondary"
                onClick={() => onResize(v)}
                disabled={busy}
                aria-label={`Resize ${v.name}`}
              >
                Resize
              </button>
              <button
                type="button"
                className="danger"
                onClick={() => onDelete(v)}
                disabled={busy}
                aria-label={`Delete ${v.name}`}
              >
                Delete
              </button>
            </>
          )}
        </td>
      </tr>
      {open && !deleting && (
        <tr className="snapshot-panel" id={panelId} data-snapshots-of={v.name} data-row-of={v.dataset_id}>
          <td colSpan={7} data-label={`Snapshots of ${v.name}`}>
            <ScheduleForm
              key={`${v.snapshot_schedule?.text ?? ''}|${v.snapshot_schedule?.keep ?? ''}`}
              volume={v}
              busy={busy}
              now={now}
              onSave={onSetSchedule}
            />
            <TakeSnapshotForm volume={v} busy={busy} onTake={onTakeSnapshot} />
            {snapshots.length === 0 ? (
              <p className="empty">No snapshots of {v.name} yet.</p>
            ) : (
              <SnapshotList
                snapshots={snapshots}
                now={now}
                busy={busyKeys}
                label={`Snapshots of ${v.name}`}
                {...snapshotActions}
              />
            )}
          </td>
        </tr>
      )}
    </>
  );
}

interface SnapshotActions {
  onClone: (s: SnapshotView) => void;
  onDelete: (s: SnapshotView) => void;
}

/** A snapshot for people: its name, else its short id. */
function snapshotLabel(s: Pick<SnapshotView, 'name' | 'snapshot_id'>): string {
  return s.name || s.snapshot_id.slice(0, 8);
}

/** Badge colours of the volume states that mean the same: waiting, working, usable, failed, going away. */
const SNAPSHOT_BADGE: Record<SnapshotView['state'], string> = {
  requested: 'state-creating',
  creating: 'state-attaching',
  ready: 'state-mounted',
  error: 'state-error',
  deleting: 'state-deleting',
};

function TakeSnapshotForm({
  volume,
  busy,
  onTake,
}: {
  volume: VolumeView;
  busy: boolean;
  onTake: (v: VolumeView, name: string) => Promise<boolean>;
}) {
  const [name, setName] = useState('');
  const inputId = `snapshot-name-${volume.dataset_id}`;
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (await onTake(volume, name.trim())) setName('');
  };
  return (
    <form className="take-snapshot" onSubmit={(e) => void submit(e)} noValidate>
      <label htmlFor={inputId}>Snapshot name</label>
      <input
        id={inputId}
        value={name}
        onChange={(e) => setName(e.target.value)}
        autoComplete="off"
        placeholder="optional"
      />
      <button type="submit" disabled={busy}>
        Take snapshot<span className="visually-hidden"> of {volume.name}</span>
      </button>
    </form>
  );
}

/**
 * The volume's snapshot schedule: what runs and when next, and a form to set, change or (blank)
 * remove it. Re-created (by key) when the schedule changes, so it shows what the cluster has.
 */
function ScheduleForm({
  volume,
  busy,
  now,
  onSave,
}: {
  volume: VolumeView;
  busy: boolean;
  now: number;
  onSave: (v: VolumeView, schedule: string, keep: string) => Promise<boolean>;
}) {
  const current = volume.snapshot_schedule;
  const [schedule, setSchedule] = useState(current?.text ?? '');
  const [keep, setKeep] = useState(current ? String(current.keep) : '');
  const id = volume.dataset_id;
  const next = current ? nextScheduledAt(current, now) : undefined;
  return (
    <form
      className="take-snapshot schedule"
      onSubmit={(e) => {
        e.preventDefault();
        void onSave(volume, schedule.trim(), keep.trim());
      }}
      noValidate
    >
      <p className="sub schedule-status" data-schedule={current?.text ?? ''} data-not-run={current?.not_run ?? ''}>
        {current && current.not_run !== null
          ? `Scheduled ${current.text}, keeping the newest ${current.keep} (${current.kept} now); ${current.not_run} (empty the schedule and save).`
          : current && next !== undefined
            ? `Scheduled ${current.text}, keeping the newest ${current.keep} (${current.kept} now); next ${next <= now ? 'due now' : `at ${clockTime(new Date(next).toISOString())}`}.`
            : 'No snapshot schedule.'}
      </p>
      <label htmlFor={`schedule-${id}`}>Snapshot schedule</label>
      <input
        id={`schedule-${id}`}
        value={schedule}
        onChange={(e) => setSchedule(e.target.value)}
        autoComplete="off"
        placeholder="hourly, daily, every 15m"
        aria-describedby={`schedule-hint-${id}`}
      />
      <label htmlFor={`keep-${id}`}>Keep</label>
      <input
        id={`keep-${id}`}
        className="keep"
        value={keep}
        onChange={(e) => setKeep(e.target.value)}
        inputMode="numeric"
        placeholder="24"
      />
      <button type="submit" className="secondary" disabled={busy}>
        Save schedule<span className="visually-hidden"> of {volume.name}</span>
      </button>
      <small id={`schedule-hint-${id}`} className="sub">
        blank: no schedule; the oldest scheduled snapshots beyond Keep are deleted, others never
      </small>
    </form>
  );
}

function SnapshotList({
  snapshots,
  now,
  busy,
  showVolume = false,
  label,
  labelledBy,
  onClone,
  onDelete,
}: SnapshotActions & {
  snapshots: SnapshotView[];
  now: number;
  busy: Set<string>;
  /** Name the source volume in a column (snapshots of deleted volumes). */
  showVolume?: boolean;
  label?: string;
  labelledBy?: string;
}) {
  return (
    <table className="cards snapshots" aria-label={label} aria-labelledby={labelledBy}>
      <thead>
        <tr>
          <th scope="col">Snapshot</th>
          {showVolume && <th scope="col">Volume</th>}
          <th scope="col">Size</th>
          <th scope="col">Taken</th>
          <th scope="col">State</th>
          <th scope="col">Actions</th>
        </tr>
      </thead>
      <tbody>
        {snapshots.map((s) => {
          const name = snapshotLabel(s);
          const waiting = busy.has(s.snapshot_id);
          return (
            <tr key={s.snapshot_id} data-snapshot={name} data-state={s.state}>
              <th scope="row" data-label="Snapshot">
                {s.name || <span className="sub">unnamed</span>}
                {s.scheduled && <span className="tag">scheduled</span>}
                <div className="sub" title={s.snapshot_id}>
                  {s.snapshot_id.slice(0, 8)}
                </div>
              </th>
              {showVolume && (
                <td data-label="Volume">
                  {s.volume}
                  {s.source_deleted && <div className="sub">deleted</div>}
                </td>
              )}
              <td data-label="Size">{s.size === null ? '—' : formatSize(s.size)}</td>
              <td data-label="Taken">
                {s.taken_at ? (
                  <time dateTime={s.taken_at} title={s.taken_at}>
                    {age(s.taken_at, now)} ago
                  </time>
                ) : (
                  <span className="sub" title={s.created_at}>
                    asked {age(s.created_at, now)} ago
                  </span>
                )}
              </td>
              <td data-label="State" data-state-text={s.error ? `${s.state}; error: ${s.error}` : s.state}>
                <span className={`badge ${SNAPSHOT_BADGE[s.state]}`}>{s.state}</span>
                {s.error && <div className="sub detail failing">error: {s.error}</div>}
              </td>
              <td data-label="Actions" className="actions">
                {s.state !== 'deleting' && (
                  <>
                    <button
                      type="button"
                      onClick={() => onClone(s)}
                      disabled={waiting || s.state === 'error'}
                      aria-label={`Clone snapshot ${name}`}
                    >
                      Clone
                    </button>
                    <button
                      type="button"
                      className="danger"
                      onClick={() => onDelete(s)}
                      disabled={waiting}
                      aria-label={`Delete snapshot ${name}`}
                    >
                      Delete
                    </button>
                  </>
                )}
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

/** Grow a volume: a size at least its own (the API refuses less); online where the file system can grow mounted. */
function ResizeDialog({ volume, onClose }: { volume: VolumeView | null; onClose: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  const [size, setSize] = useState('');
  const [error, setError] = useState<{ code: string; message: string } | null>(null);
  const [sending, setSending] = useState(false);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (volume && !d.open) d.showModal();
    if (!volume && d.open) d.close();
  }, [volume]);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!volume) return;
    setSending(true);
    setError(null);
    try {
      await api.resize(volume.dataset_id, size.trim());
      onClose();
    } catch (err) {
      setError({ code: err instanceof ActionFailed ? err.code : 'ERROR', message: errorMessage(err) });
    } finally {
      setSending(false);
    }
  };
  return (
    <dialog ref={ref} aria-labelledby="resize-h" onClose={onClose} className="confirm clone">
      {volume && (
        <form onSubmit={(e) => void submit(e)} noValidate className="create">
          <h2 id="resize-h">Resize {volume.name}</h2>
          <div className="fields">
            <div className="field">
              <label htmlFor="resize-size">New size</label>
              <input
                id="resize-size"
                value={size}
                onChange={(e) => setSize(e.target.value)}
                autoComplete="off"
                placeholder={volume.size === null ? '1GiB' : formatSize(volume.size)}
                aria-invalid={error ? true : undefined}
                aria-describedby={error ? 'resize-error resize-hint' : 'resize-hint'}
              />
              <small id="resize-hint">
                {volume.size === null ? 'volumes' : `now ${formatSize(volume.size)}; volumes`} grow, never shrink; the{' '}
                {volume.filesystem} file system follows while mounted where the host allows it, else at its next mount
              </small>
            </div>
          </div>
          {error && (
            <p className="error" id="resize-error" role="alert">
              {error.message}
            </p>
          )}
          <div className="buttons">
            <button type="button" className="secondary" onClick={onClose}>
              Cancel
            </button>
            <button type="submit" disabled={sending}>
              {sending ? 'Resizing…' : 'Resize'}
            </button>
          </div>
        </form>
      )}
    </dialog>
  );
}

/** A new volume from a snapshot: name, size (blank: the snapshot's; never less) and node. */
function CloneDialog({
  snapshot,
  nodes,
  onClose,
}: {
  snapshot: SnapshotView | null;
  nodes: NodeView[];
  onClose: () => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const alive = nodes.filter((n) => n.alive);
  const [name, setName] = useState('');
  const [size, setSize] = useState('');
  const [node, setNode] = useState('');
  const [error, setError] = useState<{ code: string; message: string } | null>(null);
  const [sending, setSending] = useState(false);
  const chosen = alive.some((n) => n.uuid === node)
    ? node
    : (defaultCloneNode(snapshot?.source_primary, alive)?.uuid ?? '');
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (snapshot && !d.open) d.showModal();
    if (!snapshot && d.open) d.close();
  }, [snapshot]);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!snapshot) return;
    const nameProblem = volumeNameProblem(name.trim());
    if (nameProblem !== undefined) {
      setError({ code: 'INVALID_NAME', message: nameProblem });
      return;
    }
    setSending(true);
    setError(null);
    try {
      await api.clone(snapshot.snapshot_id, name.trim(), size.trim(), chosen);
      onClose();
    } catch (err) {
      setError({ code: err instanceof ActionFailed ? err.code : 'ERROR', message: errorMessage(err) });
    } finally {
      setSending(false);
    }
  };
  const label = snapshot ? snapshotLabel(snapshot) : '';
  const badSize = error && refusesSize(error) ? true : undefined;
  return (
    <dialog ref={ref} aria-labelledby="clone-h" onClose={onClose} className="confirm clone">
      {snapshot && (
        <form onSubmit={(e) => void submit(e)} noValidate className="create">
          <h2 id="clone-h">Clone snapshot {label}</h2>
          <p className="sub">
            A new volume holding the data of {snapshot.volume} as it was
            {snapshot.taken_at ? ` at ${clockTime(snapshot.taken_at)}` : ' when the snapshot is taken'}.
          </p>
          <div className="fields">
            <div className="field">
              <label htmlFor="clone-name">Volume name</label>
              <input
                id="clone-name"
                value={name}
                onChange={(e) => setName(e.target.value)}
                autoComplete="off"
                aria-invalid={error && !badSize ? true : undefined}
                aria-describedby={error ? 'clone-error' : undefined}
              />
            </div>
            <div className="field">
              <label htmlFor="clone-size">Volume size</label>
              <input
                id="clone-size"
                value={size}
                onChange={(e) => setSize(e.target.value)}
                placeholder={snapshot.size === null ? 'as the snapshot' : formatSize(snapshot.size)}
                aria-invalid={badSize}
                aria-describedby={error ? 'clone-error clone-size-hint' : 'clone-size-hint'}
              />
              <small id="clone-size-hint">
                blank: the snapshot&apos;s size{snapshot.size === null ? '' : ` (${formatSize(snapshot.size)})`}; never
                less
              </small>
            </div>
            <div className="field">
              <label htmlFor="clone-node">On node</label>
              <select id="clone-node" value={chosen} onChange={(e) => setNode(e.target.value)}>
                {alive.length === 0 && <option value="">no live node</option>}
                {alive.map((n) => (
                  <option key={n.uuid} value={n.uuid}>
                    {n.host}
                  </option>
                ))}
              </select>
            </div>
          </div>
          {error && (
            <p className="error" id="clone-error" role="alert">
              {error.message}
            </p>
          )}
          <div className="buttons">
            <button type="button" className="secondary" onClick={onClose}>
              Cancel
            </button>
            <button type="submit" disabled={sending || !chosen}>
              {sending ? 'Cloning…' : 'Clone'}
            </button>
          </div>
        </form>
      )}
    </dialog>
  );
}

function NodesSection({ nodes, now }: { nodes: NodeView[]; now: number }) {
  return (
    <section aria-labelledby="nodes-h">
      <h2 id="nodes-h">
        Nodes{' '}
        <span className="count">
          {nodes.filter((n) => n.alive).length}/{nodes.length} alive
        </span>
      </h2>
      {nodes.length === 0 ? (
        <p className="empty">No node has reported yet.</p>
      ) : (
        <table className="cards">
          <thead>
            <tr>
              <th scope="col">Address</th>
              <th scope="col">Status</th>
              <th scope="col">Era</th>
              <th scope="col">Volumes</th>
              <th scope="col">Last seen</th>
            </tr>
          </thead>
          <tbody>
            {nodes.map((n) => (
              <tr key={n.uuid} data-node={n.host}>
                <th scope="row" data-label="Address">
                  {n.host}
                  <div className="sub" title={n.uuid}>
                    {n.uuid.slice(0, 8)} · {n.backend}
                  </div>
                </th>
                <td data-label="Status">
                  <span className={`badge ${n.alive ? 'state-mounted' : 'state-error'}`}>
                    {n.alive ? 'alive' : 'dead'}
                  </span>
                  {n.errors > 0 && (
                    <div className="sub">
                      {n.errors} failing action{n.errors === 1 ? '' : 's'}
                    </div>
                  )}
                </td>
                <td data-label="Era">
                  <code title={n.era}>{n.era.slice(0, 8)}</code>
                </td>
                <td data-label="Volumes">
                  {n.volumes.length === 0
                    ? '—'
                    : n.volumes.map((x) => `${x.name}${x.status === 'attached' ? ' (attached)' : ''}`).join(', ')}
                </td>
                <td data-label="Last seen">{age(n.last_seen, now)} ago</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function FeedSection({ events }: { events: UiEvent[] }) {
  const newestFirst = [...events].reverse();
  return (
    <section aria-labelledby="feed-h" className="feed">
      <h2 id="feed-h">Events</h2>
      <ol role="log" aria-live="polite" aria-relevant="additions" aria-label="Cluster events" id="feed">
        {newestFirst.length === 0 && <li className="empty">Nothing has happened since the UI started.</li>}
        {newestFirst.map((e) => (
          <li key={e.id} className={`event sev-${e.severity}`} data-kind={e.kind}>
            <time dateTime={e.time}>{clockTime(e.time)}</time> {e.message}
          </li>
        ))}
      </ol>
    </section>
  );
}

/** "1.2 GiB of 10 GiB" with a bar, once the node where the volume is mounted has measured it. */
function UsedSpace({ v }: { v: VolumeView }): ReactNode {
  const used = usedSpace(v);
  if (used === null) return null;
  return (
    <div className="sub used" data-used={v.used ?? undefined} title="used on its file system">
      {used.fraction !== null && (
        <meter min={0} max={1} low={0.8} high={0.9} optimum={0} value={used.fraction} aria-label="used" />
      )}{' '}
      <span className="used-text">{used.text}</span>
    </div>
  );
}

/** A modal dialog, open while `subject` is set: Cancel (focused first) or the dangerous `confirmLabel`. */
function ConfirmDialog<T>({
  id,
  subject,
  title,
  children,
  confirmLabel,
  onCancel,
  onConfirm,
}: {
  /** Prefix of the heading's and text's element ids. */
  id: string;
  subject: T | null;
  title: ReactNode;
  children: ReactNode;
  confirmLabel: string;
  onCancel: () => void;
  onConfirm: (subject: T) => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (subject && !d.open) d.showModal();
    if (!subject && d.open) d.close();
  }, [subject]);
  return (
    <dialog
      ref={ref}
      aria-labelledby={`${id}-h`}
      aria-describedby={`${id}-text`}
      onClose={onCancel}
      className="confirm"
    >
      <h2 id={`${id}-h`}>{title}</h2>
      <p id={`${id}-text`}>{children}</p>
      <div className="buttons">
        <button type="button" onClick={onCancel} autoFocus>
          Cancel
        </button>
        <button type="button" className="danger" onClick={() => subject && onConfirm(subject)}>
          {confirmLabel}
        </button>
      </div>
    </dialog>
  );
}

function ConfirmRelease({
  pending,
  onCancel,
  onConfirm,
}: {
  pending: { volume: VolumeView; risk: string } | null;
  onCancel: () => void;
  onConfirm: (v: VolumeView) => void;
}) {
  return (
    <ConfirmDialog
      id="release"
      subject={pending}
      title={<>Release the lease on {pending?.volume.name}?</>}
      confirmLabel="Release anyway"
      onCancel={onCancel}
      onConfirm={(p) => onConfirm(p.volume)}
    >
      {pending?.risk}
    </ConfirmDialog>
  );
}

function ConfirmDelete({
  volume,
  onCancel,
  onConfirm,
}: {
  volume: VolumeView | null;
  onCancel: () => void;
  onConfirm: (v: VolumeView) => void;
}) {
  return (
    <ConfirmDialog
      id="confirm"
      subject={volume}
      title={<>Delete {volume?.name}?</>}
      confirmLabel="Delete volume"
      onCancel={onCancel}
      onConfirm={onConfirm}
    >
      The volume <strong>{volume?.name}</strong> and all its data will be destroyed on every node. This cannot be
      undone.
    </ConfirmDialog>
  );
}
