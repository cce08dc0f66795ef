/**
 * A move away and straight back (session 9, stale mounted): the old holder's agent unmounts for the move away
 * but its report of that is debounced, and the new holder's "mounted" can reach the control service first, so
 * for a moment the state shows the volume mounted on both. `flocker volumes move <volume> <old holder>` started
 * in that window must not end on the old holder's stale "mounted": when it says "mounted at P", P is mounted
 * there (the kernel's table of that host). Real control service, dataset agents on two hosts (loop devices).
 * The CLI runs in-process (buildCli) against the cluster's client, so the move back starts within milliseconds.
 */
import { buildCli, movePhase, moveWaitPhase } from '@flocker/cli';
import { isMountedOn, TEST_DATASET_SIZE, waitForMountedOn, type Cluster, type ClusterHost } from './cluster';
import { clusterForSuite } from './cluster/suite';

jest.setTimeout(180_000);

let cluster: Cluster;
let a: ClusterHost;
let b: ClusterHost;

clusterForSuite({ hosts: 2, withDocker: false }, (started) => {
  cluster = started;
  [a, b] = cluster.hosts as [ClusterHost, ClusterHost];
});

async function flocker(...argv: string[]): Promise<{ out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  process.exitCode = 0;
  await buildCli(argv, { out: (t) => out.push(t), err: (t) => err.push(t), interactive: false }, () => cluster.client)
    .exitProcess(false)
    .parseAsync();
  const code = Number(process.exitCode ?? 0);
  process.exitCode = 0;
  if (code !== 0) throw new Error(`flocker ${argv.join(' ')} exited ${code}: ${err.join('\n')}`);
  return { out: out.join('\n'), err: err.join('\n') };
}

/** A dataset `name` created on A, once mounted there: its id and A's path. */
async function mountedOnA(name: string): Promise<{ id: string; path: string }> {
  const d = await cluster.client.createDataset({
    primary: a.requireNodeUuid(),
    maximum_size: TEST_DATASET_SIZE,
    metadata: { name },
  });
  return { id: d.dataset_id, path: await waitForMountedOn(cluster.client, d.dataset_id, a.requireNodeUuid()) };
}

/** Moves the dataset to B and answers as soon as A's kernel shows its path unmounted. */
async function moveToBUntilUnmountedOnA(id: string, path: string): Promise<void> {
  await cluster.client.updateDataset(id, { primary: b.requireNodeUuid() });
  while (await isMountedOn(a, path)) await new Promise((r) => setTimeout(r, 2));
}

it('a move back started while the state still shows the old holder mounted ends only once it is mounted there', async () => {
  const d = await mountedOnA('stale-mounted');
  const path = d.path;
  let windows = 0;
  const ROUNDS = 6;
  for (let round = 0; round < ROUNDS; round++) {
    // As soon as A's kernel shows the volume unmounted: is the state still showing it mounted on A?
    await moveToBUntilUnmountedOnA(d.id, path);
    const s = await cluster.client.waitForCluster(undefined, 0);
    const staleOnA = s.nodes
      .find((n) => n.uuid === a.requireNodeUuid())
      ?.manifestations.some((m) => m.dataset_id === d.id && m.status === 'mounted');
    if (staleOnA === true) windows++;
    const started = Date.now();
    const moved = await flocker('volumes', 'move', 'stale-mounted', a.layout.address);
    const answered = /at (\S+)$/m.exec(moved.out)?.[1];
    expect(answered).toBe(path);
    // The path the move said is mounted on A is mounted on A.
    expect({ round, mounted: await isMountedOn(a, path) }).toEqual({ round, mounted: true });
    process.stdout.write(
      `round ${round}: state showed A mounted after A's unmount: ${staleOnA === true}; move back took ${Date.now() - started} ms\n`,
    );
  }
  process.stdout.write(`stale "mounted on A" seen after A's unmount in ${windows} of ${ROUNDS} rounds\n`);
});

it('the move wait, polled right after the move back, never says mounted while the kernel says not (the old one did)', async () => {
  const d = await mountedOnA('stale-mounted-2');
  const A = a.requireNodeUuid();
  const path = d.path;
  let oldWrong = 0;
  let s9Wrong = 0;
  let newWrong = 0;
  const ROUNDS = 6;
  for (let round = 0; round < ROUNDS; round++) {
    await moveToBUntilUnmountedOnA(d.id, path);
    const before = await cluster.client.waitForCluster(undefined, 0);
    await cluster.client.updateDataset(d.id, { primary: A });
    // The waits' verdicts on each snapshot, each checked against A's kernel right after, until the newest is done:
    // movePhase (before session 9), moveWaitPhase without the state list (session 9: a later last_seen), and with
    // it (session 10, what 'volumes move --wait' does: the service's configuration_version rule).
    for (;;) {
      const s = await cluster.client.waitForCluster(undefined, 0);
      const old = movePhase(s, d.id, A).phase === 'mounted';
      const s9 = moveWaitPhase(before, s, d.id, A).phase === 'mounted';
      const now = s9 && moveWaitPhase(before, s, d.id, A, await cluster.client.listDatasetState()).phase === 'mounted';
      if (!old && !s9) {
        await new Promise((r) => setTimeout(r, 2));
        continue;
      }
      const mounted = await isMountedOn(a, path);
      if (old && !mounted) oldWrong++;
      if (s9 && !mounted) s9Wrong++;
      if (now && !mounted) newWrong++;
      if (now) break;
      await new Promise((r) => setTimeout(r, 2));
    }
  }
  process.stdout.write(
    `polled waits, ${ROUNDS} moves back: said mounted while A was not: before session 9 ${oldWrong} times, session 9 ${s9Wrong}, session 10 ${newWrong}\n`,
  );
  expect(newWrong).toBe(0);
});

it('/v1/state/datasets (what flocker-go polls: primary == node, with a path) never shows the old holder mounted after its unmount', async () => {
  const d = await mountedOnA('stale-mounted-3');
  const A = a.requireNodeUuid();
  const path = d.path;
  let wrong = 0;
  const ROUNDS = 6;
  for (let round = 0; round < ROUNDS; round++) {
    await moveToBUntilUnmountedOnA(d.id, path);
    await cluster.client.updateDataset(d.id, { primary: A });
    for (;;) {
      const s = (await cluster.client.listDatasetState()).find((x) => x.dataset_id === d.id);
      if (s?.primary !== A || s.path === undefined) {
        await new Promise((r) => setTimeout(r, 2));
        continue;
      }
      if (!(await isMountedOn(a, path))) wrong++;
      break;
    }
  }
  process.stdout.write(`state polled after ${ROUNDS} moves back: shown mounted on A while A was not ${wrong} times\n`);
  expect(wrong).toBe(0);
});

it('a move back while the old holder is still unmounting: the state never shows it mounted there while its kernel says not (session 10)', async () => {
  // Moved back 0-40 ms after the move away: A's agent is mid-unmount (or has not seen the move away at all), and
  // its reports built meanwhile (progress, heartbeats) can reach the service after the move back. Each time the
  // state shows the dataset at A with a path (and for 300 ms after, polled), A's kernel must have it mounted.
  const d = await mountedOnA('stale-mounted-4');
  const A = a.requireNodeUuid();
  const path = d.path;
  let wrong = 0;
  let s9Wrong = 0;
  let checks = 0;
  const GAPS_MS = [0, 2, 5, 10, 20, 40];
  for (const gap of GAPS_MS) {
    await cluster.client.updateDataset(d.id, { primary: b.requireNodeUuid() });
    if (gap > 0) await new Promise((r) => setTimeout(r, gap));
    await cluster.client.updateDataset(d.id, { primary: A });
    const movedBackAt = Date.now();
    let shownSince: number | undefined;
    while (shownSince === undefined || Date.now() - shownSince < 300) {
      const s = (await cluster.client.listDatasetState()).find((x) => x.dataset_id === d.id);
      // What session 9's rule took: A's raw state saying mounted from a report received after the move back.
      const raw = (await cluster.client.waitForCluster(undefined, 0)).nodes.find((n) => n.uuid === A);
      const rawMounted = raw?.manifestations.some((m) => m.dataset_id === d.id && m.status === 'mounted') === true;
      const receivedAfter = raw !== undefined && Date.parse(raw.last_seen) > movedBackAt;
      const shown = s?.primary === A && s.path !== undefined;
      if (shown || (rawMounted && receivedAfter)) {
        const mountedNow = await isMountedOn(a, path);
        if (rawMounted && receivedAfter && !mountedNow) s9Wrong++;
        if (shown) {
          shownSince ??= Date.now();
          checks++;
          if (!mountedNow) wrong++;
        }
      }
      await new Promise((r) => setTimeout(r, 2));
    }
  }
  process.stdout.write(
    `moves back 0-40 ms after the move away: state showed A mounted while A was not ${wrong} of ${checks} looks; ` +
      `session 9's rule (a report received after the move) would have ${s9Wrong} times\n`,
  );
  expect(wrong).toBe(0);
});
