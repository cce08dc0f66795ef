/**
 * `flocker volumes move … --timeout N` while the target refuses until the user acts (session 16, review U2 finding
 * 4): TWO_LIVE_COPIES, or SOURCE_UNREACHABLE with an opt-in that did not help, waited the whole timeout and exited 5
 * ("formatting and mounting — refused: …"), though nothing would change until the user acted. Now the wait ends
 * once the same refusal has lasted REFUSAL_GRACE_MS (a refusal from before the agent acted on the move is gone by
 * then): exit 8 (REFUSED), the refusal with its way out as a command, the move still asked for.
 */
import type { ClusterSnapshot, DatasetState, FlockerClient, UpdateDatasetRequest } from '@flocker/api';
import { A, B, D1, dataset, node, snapshot } from '@flocker/web-ui/testing';
import { EXIT } from './errors';
import { movePhase, REFUSAL_GRACE_MS, refusalAfter } from './progress';
import { runCli } from './testing/runCli';

const DL = 'clusterhq:flocker:accept-data-loss';
const RL = 'clusterhq:flocker:accept-replica-loss';
const TWO = `this node and node ${A} both hold a live copy of dataset ${D1}: set metadata ${DL}=true to mount this node's copy`;

const copy = (status: 'attached' | 'mounted') => ({
  dataset_id: D1,
  blockdevice_id: D1,
  size: 1 << 27,
  status,
  ...(status === 'mounted' ? { path: '/b' } : {}),
});

/** pg on a (alive); after the move to b, b holds a copy and reports `errors` (or has it mounted). */
function state(primary: string, b: { refusal?: { code: string; message: string }; mounted?: boolean }, aAlive = true) {
  return snapshot({
    datasets: [dataset(D1, 'pg', primary)],
    nodes: [
      node(A, 'a', { backend: 'local-btrfs', alive: aAlive, manifestations: [copy('attached')] }),
      node(B, 'b', {
        backend: 'local-btrfs',
        manifestations: [copy(b.mounted === true ? 'mounted' : 'attached')],
        errors:
          b.refusal === undefined
            ? []
            : [{ dataset_id: D1, action: 'refuse', ...b.refusal, attempts: 1, since: '2026-12-05T22:00:00Z' }],
      }),
    ],
  });
}

/** A client whose cluster is `before` until the move, then `after(ms since the move)`. */
function fakeClient(before: ClusterSnapshot, after: (sinceMoveMs: number) => ClusterSnapshot) {
  let movedAt: number | undefined;
  const updates: UpdateDatasetRequest[] = [];
  const now = () => (movedAt === undefined ? before : after(Date.now() - movedAt));
  const client = {
    listDatasets: async () => now().datasets,
    waitForCluster: async (since?: string, ms = 0) => {
      if (since !== undefined) await new Promise((r) => setTimeout(r, Math.min(ms, 100)));
      return now();
    },
    updateDataset: async (_id: string, req: UpdateDatasetRequest) => {
      updates.push(req);
      movedAt = Date.now();
      return after(0).datasets[0];
    },
    listDatasetState: async (): Promise<DatasetState[]> => [{ dataset_id: D1, primary: B, path: '/b' }],
    listLeases: async () => [],
  };
  return { client: () => client as unknown as FlockerClient, updates };
}

describe('refusalAfter (a move wait’s view of a refusal)', () => {
  const refused = (code: string) => movePhase(state(B, { refusal: { code, message: 'm' } }), D1, B);
  it('the same refusal keeps its start and is final after the grace; another starts again; none forgets it', () => {
    const first = refusalAfter(undefined, refused('TWO_LIVE_COPIES'), 1000);
    expect(first).toEqual({ seen: { code: 'TWO_LIVE_COPIES', since: 1000 }, final: false });
    expect(refusalAfter(first.seen, refused('TWO_LIVE_COPIES'), 1000 + REFUSAL_GRACE_MS - 1).final).toBe(false);
    expect(refusalAfter(first.seen, refused('TWO_LIVE_COPIES'), 1000 + REFUSAL_GRACE_MS).final).toBe(true);
    expect(refusalAfter(first.seen, refused('SOURCE_UNREACHABLE'), 1000 + REFUSAL_GRACE_MS)).toEqual({
      seen: { code: 'SOURCE_UNREACHABLE', since: 1000 + REFUSAL_GRACE_MS },
      final: false,
    });
    expect(refusalAfter(first.seen, movePhase(state(B, {}), D1, B), 5000)).toEqual({ seen: undefined, final: false });
  });
  it('a failure that is no refusal, or a refusal the agent may end by itself, never ends the wait', () => {
    const failed = movePhase(
      snapshot({
        ...state(B, {}),
        nodes: [
          node(B, 'b', {
            backend: 'local-btrfs',
            manifestations: [copy('attached')],
            errors: [
              { dataset_id: D1, action: 'mount', code: 'TWO_LIVE_COPIES', message: 'x', attempts: 3, since: 's' },
            ],
          }),
        ],
      }),
      D1,
      B,
    );
    expect(refusalAfter(undefined, failed, 0)).toEqual({ seen: undefined, final: false });
    expect(refusalAfter({ code: 'PEER_REFUSED', since: 0 }, refused('PEER_REFUSED'), 1e9).final).toBe(false);
  });
});

describe('volumes move --timeout during a refusal only the user ends', () => {
  jest.setTimeout(30_000);

  it('TWO_LIVE_COPIES: exit 8 after the grace, not the timeout, with the refusal’s command; the move stays', async () => {
    const { client } = fakeClient(state(A, {}), () => state(B, { refusal: { code: 'TWO_LIVE_COPIES', message: TWO } }));
    // The --json run waits its grace beside this one (not after it: 10 s saved). It starts 1 s later so the two
    // never end together: runCli reads the command's exit code from process.exitCode, which both set.
    const jsonRun = (async () => {
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      return runCli(
        fakeClient(state(A, {}), () => state(B, { refusal: { code: 'TWO_LIVE_COPIES', message: TWO } })).client,
        ['volumes', 'move', 'pg', 'b', '--timeout', '60', '--json'],
      );
    })();
    const started = Date.now();
    const r = await runCli(client, ['volumes', 'move', 'pg', 'b', '--timeout', '60']);
    const took = Date.now() - started;
    const json = await jsonRun;
    expect(r.code).toBe(EXIT.REFUSED);
    expect(took).toBeGreaterThanOrEqual(REFUSAL_GRACE_MS);
    expect(took).toBeLessThan(REFUSAL_GRACE_MS + 5_000);
    expect(r.err).toContain(
      `refused on b: ${TWO.replace('=true', '=true (flocker volumes move pg b --accept-data-loss)')}`,
    );
    expect(r.err).toContain('The move stays asked for');
    expect(JSON.parse(json.err.split('\n').at(-1) ?? '{}')).toMatchObject({
      error: { code: 'TWO_LIVE_COPIES', exit_code: 8 },
    });
  });

  it('a refusal gone within the grace (the agent had not acted on the move yet) does not end a wait that succeeds', async () => {
    const { client } = fakeClient(state(A, {}), (ms) =>
      ms < 3_000 ? state(B, { refusal: { code: 'TWO_LIVE_COPIES', message: TWO } }) : state(B, { mounted: true }),
    );
    const r = await runCli(client, ['volumes', 'move', 'pg', 'b', '--timeout', '60']);
    expect(r).toMatchObject({ code: 0 });
    expect(r.out).toMatch(/pg is mounted on b at \/b/);
  });

  it('a timeout shorter than the grace: exit 5 as before', async () => {
    const { client } = fakeClient(state(A, {}), () => state(B, { refusal: { code: 'TWO_LIVE_COPIES', message: TWO } }));
    const r = await runCli(client, ['volumes', 'move', 'pg', 'b', '--timeout', '2']);
    expect(r.code).toBe(EXIT.TIMEOUT);
  });

  it('SOURCE_UNREACHABLE with --accept-replica-loss that did not help (no replica on b): exit 8 after the grace', async () => {
    const dead = `the data of dataset ${D1} is on node ${A} (a), which is dead: local storage cannot be moved off a dead node; bring it back, or move the dataset back to it`;
    const { client, updates } = fakeClient(state(A, {}, false), () =>
      state(B, { refusal: { code: 'SOURCE_UNREACHABLE', message: dead } }, false),
    );
    const r = await runCli(client, ['volumes', 'move', 'pg', 'b', '--accept-replica-loss', '--timeout', '60']);
    expect(updates).toEqual([{ primary: B, metadata: { [RL]: 'true' } }]);
    expect(r.code).toBe(EXIT.REFUSED);
    expect(r.err).toContain(dead);
    expect(r.err).toContain('The move stays asked for: it goes on by itself if a comes back');
  });
});
