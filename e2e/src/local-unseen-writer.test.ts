/**
 * Review RV 2 (session 16), with two real agents: a writer the namespace scan cannot see (an fd kept
 * past a lazy unmount of its own bind mount of the volume) appends a line every 20 ms while the
 * primary is moved A -> B, and stops a few seconds after A's agent let go of its mount. The look at the
 * release says released throughout; before, the final snapshot was promoted on B and A's copy deleted
 * under the writer: its lines after that snapshot were gone. Now the source is found changed since each
 * final snapshot and the move copies on until the writer stopped: B has every line it wrote.
 * btrfs loop pools (zfs-fuse cannot tell a change: no `written`; OpenZFS can, not on this machine), a
 * control service over mutual TLS. Needs root.
 */
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { setPriority } from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { localEngineCases, MiB, mountsAt, processState, TwoLocalAgents } from './localTwoAgents';

jest.setTimeout(180_000);

/**
 * The unseen writer, in its own process at a raised priority: in the Jest process (which also runs
 * the control service) a stall of its event loop longer than the final send left the window between
 * the final snapshot and the look before the promote unwritten, so the writer became test 2's writer
 * (quiet at the look, writing after the promote: A keeps a second live copy), not this test's (CI of
 * session 24: 71 of 134 lines on B). It appends a line every 20 ms to its fd 3 and, when told to stop
 * (a line on stdin), answers how many lines write() returned for and the longest gap between two.
 */
const WRITER = `
const fs = require('node:fs');
let lines = 0, last = Date.now(), maxGapMs = 0;
const t = setInterval(() => {
  fs.writeSync(3, 'line ' + ++lines + '\\n');
  const now = Date.now(); maxGapMs = Math.max(maxGapMs, now - last); last = now;
}, 20);
process.stdin.once('data', () => {
  clearInterval(t);
  fs.closeSync(3);
  process.stdout.write(JSON.stringify({ lines, maxGapMs }));
  process.exit(0);
});
`;

function startWriter(fd: number): { stop(): Promise<{ lines: number; maxGapMs: number }>; kill(): void } {
  const child = spawn(process.execPath, ['-e', WRITER], { stdio: ['pipe', 'pipe', 'inherit', fd] });
  const { stdin, stdout } = child;
  if (stdin === null || stdout === null) throw new Error('the writer has no stdin/stdout pipe');
  if (child.pid !== undefined) setPriority(child.pid, -10);
  let out = '';
  stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    async stop() {
      stdin.write('stop\n');
      await exited;
      return JSON.parse(out) as { lines: number; maxGapMs: number };
    },
    kill() {
      child.kill('SIGKILL');
    },
  };
}

const BTRFS = localEngineCases().filter((c) => c.engine === 'btrfs');

describe.each(BTRFS)(
  'a writer the release look cannot see, writing on during a move ($engine)',
  ({ engine, makePool }) => {
    let bed: TwoLocalAgents | undefined;
    beforeAll(async () => {
      bed = new TwoLocalAgents('flocker-e2e-unseen-writer-');
      await bed.startControl();
      await bed.addNodes(engine, makePool);
      const [a, b] = bed.ab;
      bed.start(a);
      bed.start(b);
      await bed.waitBothReport();
    });
    afterAll(() => bed?.close());

    it('B has every line it wrote (acknowledged: write() returned); the move copied on until it stopped', async () => {
      if (bed === undefined) throw new Error('the agents are not set up');
      const t = bed;
      const [a, b] = t.ab;
      const { dataset_id: id } = await t.admin.createDataset({ primary: a.uuid, maximum_size: 256 * MiB });
      const pathA = await t.waitMounted('mounted on A', id, a);
      // The writer's own bind mount, lazily unmounted: its fd stays, no mount namespace shows the volume.
      const hidden = path.join(t.dir, 'hidden-writer');
      mkdirSync(hidden, { recursive: true });
      execFileSync('mount', ['--bind', pathA, hidden]);
      const fd = openSync(path.join(hidden, 'log'), 'a');
      execFileSync('umount', ['-l', hidden]);
      const writer = startWriter(fd);
      closeSync(fd);
      let stopped: { lines: number; maxGapMs: number } | undefined;
      const seen = new Set<string>();
      try {
        await t.admin.updateDataset(id, { primary: b.uuid });
        // A's agent lets go of its mount (the release); the writer goes on for 3 s after that.
        await t.waitFor('A unmounted', () => (mountsAt(pathA).length === 0 ? true : undefined), 60_000, 20);
        // Meanwhile A's node state says why the move does not finish (RV4 finding 3: from the third
        // "changed" round in a row, SOURCE_WRITTEN_UNSEEN, the move copying on).
        const until = Date.now() + 3_000;
        while (Date.now() < until) {
          for (const e of await t.errorsOf(a, id)) seen.add(e.code);
          await sleep(100);
        }
        stopped = await writer.stop();
      } finally {
        if (stopped === undefined) writer.kill();
      }
      const { lines, maxGapMs } = stopped;
      console.log(`the unseen writer wrote ${lines} lines (longest gap between two: ${maxGapMs} ms)`);
      const pathB = await t.waitMounted('mounted on B', id, b, 90_000);
      const got = readFileSync(path.join(pathB, 'log'), 'utf8')
        .split('\n')
        .filter((l) => l !== '');
      expect(got.length).toBe(lines);
      expect(got.at(-1)).toBe(`line ${lines}`);
      expect(a.log).toMatch(/written since the final snapshot/);
      expect([...seen]).toEqual(['SOURCE_WRITTEN_UNSEEN']);
      // Gone once the move proceeded.
      await t.waitNoErrors(id);
    });
  },
);

// The writer quiet at the look before the promote, writing after it (A's agent stops itself right
// after that look, FLOCKER_TEST_STOP_BEFORE_PROMOTE, while the test writes): B promotes a snapshot
// without the write. A's copy is then never retired by the move (before, it was deleted under the
// writer): A refuses TWO_LIVE_COPIES and keeps the write until the user keeps one copy.
describe.each(BTRFS)(
  'a writer the release look cannot see, writing after the promote was decided ($engine)',
  ({ engine, makePool }) => {
    let bed: TwoLocalAgents | undefined;
    beforeAll(async () => {
      bed = new TwoLocalAgents('flocker-e2e-unseen-late-');
      await bed.startControl();
      await bed.addNodes(engine, makePool);
      const [a, b] = bed.ab;
      bed.start(a, { FLOCKER_TEST_STOP_BEFORE_PROMOTE: '1' });
      bed.start(b);
      await bed.waitBothReport();
    });
    afterAll(() => bed?.close());

    it("A's copy keeps the write and stays live; A refuses TWO_LIVE_COPIES", async () => {
      if (bed === undefined) throw new Error('the agents are not set up');
      const t = bed;
      const [a, b] = t.ab;
      const { dataset_id: id } = await t.admin.createDataset({ primary: a.uuid, maximum_size: 256 * MiB });
      const pathA = await t.waitMounted('mounted on A', id, a);
      const hidden = path.join(t.dir, 'hidden-writer');
      mkdirSync(hidden, { recursive: true });
      execFileSync('mount', ['--bind', pathA, hidden]);
      const fd = openSync(path.join(hidden, 'log'), 'a');
      execFileSync('umount', ['-l', hidden]);
      writeSync(fd, 'before the move\n');
      await t.admin.updateDataset(id, { primary: b.uuid });
      await t.waitFor(
        "A's agent stopped before the promote",
        () => (processState(a.pid ?? 0) === 'T' ? true : undefined),
        60_000,
        50,
      );
      writeSync(fd, 'after the look\n');
      closeSync(fd);
      process.kill(a.pid ?? 0, 'SIGCONT');
      const refusal = await t.waitRefusal("A's refusal", a, id);
      expect(refusal.code).toBe('TWO_LIVE_COPIES');
      // The check inside the engine's retire, right before its delete (RV4 finding 1).
      expect(a.log).toMatch(/written after the snapshot move-\d+ .* not retired/);
      // Its own code, not TRANSFER_FAILED: the transfer succeeded (review FR finding 5).
      expect(a.log).toMatch(/SOURCE_CHANGED/);
      expect(a.pool.live(id)).toBe(true);
      const copyA = path.join(a.pool.pool, 'flocker', 'datasets', id, 'log');
      expect(readFileSync(copyA, 'utf8')).toBe('before the move\nafter the look\n');
      // B's own report: with two live copies reported, the dataset state shows the first node's (A's,
      // attached) in the nodes' order, so waitMounted timed out whenever A came first.
      const pathB = await t.waitFor(
        'mounted on B (its report)',
        async () =>
          (await t.snap()).nodes
            .find((n) => n.uuid === b.uuid)
            ?.manifestations.find((m) => m.dataset_id === id && m.status === 'mounted')?.path,
        30_000,
        100,
      );
      expect(readFileSync(path.join(pathB, 'log'), 'utf8')).toBe('before the move\n');
    });
  },
);
