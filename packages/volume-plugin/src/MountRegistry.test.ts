import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FakeFullDisk } from '@flocker/api/testing';
import { MountRegistry } from './MountRegistry';

const A = '11111111-1111-4111-8111-111111111111';
const B = '22222222-2222-4222-8222-222222222222';

describe('MountRegistry', () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-mounts-'));
    file = path.join(dir, 'state', 'plugin-mounts.json');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('starts empty when no file exists', async () => {
    const r = await MountRegistry.load(file);
    expect(r.entries()).toEqual([]);
    expect(r.count(A)).toBe(0);
  });

  it('tells which IDs an earlier process recorded (loaded from the file) until this process records them again', async () => {
    const first = await MountRegistry.load(file);
    await first.add(A, 'va', 'c1');
    await first.add(A, 'va', 'c2');
    await first.add(B, 'vb', 'c1');
    expect([...first.inheritedIds(A)]).toEqual([]); // this process's own
    const r = await MountRegistry.load(file);
    expect([...r.inheritedIds(A)].sort()).toEqual(['c1', 'c2']);
    await r.add(A, 'va', 'c2'); // Docker retried that Mount here
    await r.add(A, 'va', 'c3');
    expect([...r.inheritedIds(A)]).toEqual(['c1']);
    expect([...r.inheritedIds(B)]).toEqual(['c1']); // per volume
    await r.remove(A, 'c1');
    expect([...r.inheritedIds(A)]).toEqual([]);
  });

  it('counts distinct mount IDs per volume', async () => {
    const r = await MountRegistry.load(file);
    expect(await r.add(A, 'va', 'c1')).toBe(1);
    expect(await r.add(A, 'va', 'c2')).toBe(2);
    expect(await r.add(A, 'va', 'c2')).toBe(2); // Docker repeating a Mount does not double count.
    expect(await r.add(B, 'vb', 'c1')).toBe(1);
    expect(r.findByName('va')).toBe(A);
    expect(await r.remove(A, 'c1')).toBe(1);
    expect(await r.remove(A, 'unknown')).toBe(1);
    expect(await r.remove(A, 'c2')).toBe(0);
    // Kept, empty, until the lease release is done.
    expect(r.entries()).toContainEqual({ datasetId: A, name: 'va', ids: [] });
    await r.dropIfUnused(A);
    expect(r.findByName('va')).toBeUndefined();
    expect(await r.remove(A, 'c2')).toBe(0);
  });

  it('survives a restart (reload from disk)', async () => {
    const r = await MountRegistry.load(file);
    await Promise.all([r.add(A, 'va', 'c1'), r.add(A, 'va', 'c2'), r.add(B, 'vb', 'x')]);
    await r.remove(B, 'x');
    expect((await MountRegistry.load(file)).entries()).toContainEqual({ datasetId: B, name: 'vb', ids: [] });
    await r.dropIfUnused(B);
    await r.dropIfUnused(A); // still in use: kept
    const again = await MountRegistry.load(file);
    expect(again.entries()).toEqual([{ datasetId: A, name: 'va', ids: ['c1', 'c2'] }]);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.statSync(`${file}.1`).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(path.dirname(file)).sort()).toEqual(['plugin-mounts.json', 'plugin-mounts.json.1']); // the two slots, nothing else
  });

  it('keeps when each mount ID was recorded, across a reload; IDs of an older file count as recorded at load', async () => {
    let clock = 1_000;
    const r = await MountRegistry.load(file, undefined, () => clock);
    await r.add(A, 'va', 'c1');
    clock = 2_000;
    await r.add(A, 'va', 'c2');
    await r.add(A, 'va', 'c1'); // Docker repeating a Mount: the ID is young again
    expect(r.mountedAt(A)).toEqual(
      new Map([
        ['c1', 2_000],
        ['c2', 2_000],
      ]),
    );
    clock = 9_000;
    expect((await MountRegistry.load(file, undefined, () => clock)).mountedAt(A)).toEqual(
      new Map([
        ['c1', 2_000],
        ['c2', 2_000],
      ]),
    );
    expect(await r.removeIds(A, ['c1', 'c2'])).toBe(0);
    fs.writeFileSync(file, JSON.stringify({ version: 1, volumes: { [B]: { name: 'vb', ids: ['old'] } } }));
    fs.rmSync(`${file}.1`);
    expect((await MountRegistry.load(file, undefined, () => clock)).mountedAt(B)).toEqual(new Map([['old', 9_000]]));
  });

  it('writes in place, taking turns between two slots, and a shorter snapshot leaves only spaces behind', async () => {
    const r = await MountRegistry.load(file);
    await r.add(A, 'va', 'c1');
    await r.add(A, 'va', 'c2');
    const inode = fs.statSync(file).ino;
    const before = fs.statSync(`${file}.1`).size;
    await r.remove(A, 'c2'); // seq 3: slot 1 again
    await r.remove(A, 'c1'); // seq 4: slot 0 again, shorter than what it held
    expect(fs.statSync(file).ino).toBe(inode); // not replaced
    expect(fs.statSync(file).size).toBeGreaterThanOrEqual(before);
    expect(fs.readFileSync(file, 'utf8')).toMatch(/\n +$/);
    expect(MountRegistry.read(file).latest).toEqual({
      version: 1,
      seq: 4,
      volumes: { [A]: { name: 'va', ids: [] } },
      sum: expect.any(String),
    });
  });

  it('a write cut short spoils only its slot: loading takes the state before it', async () => {
    const r = await MountRegistry.load(file);
    await r.add(A, 'va', 'c1'); // seq 1: slot 1
    await r.add(A, 'va', 'c2'); // seq 2: slot 0
    // Killed in the middle of writing seq 3 over slot 1: its start is new, its end old,
    // and here that even parses (only the seq differs in the part written).
    const old = fs.readFileSync(`${file}.1`, 'utf8');
    const torn = old.replace('"seq": 1', '"seq": 3');
    expect((): unknown => JSON.parse(torn)).not.toThrow();
    fs.writeFileSync(`${file}.1`, torn);
    const problems: string[] = [];
    const again = await MountRegistry.load(file, (p) => problems.push(p));
    expect(again.entries()).toEqual([{ datasetId: A, name: 'va', ids: ['c1', 'c2'] }]);
    expect(problems).toEqual([]);
    // The next write goes over the spoilt slot.
    await again.add(B, 'vb', 'x');
    expect(MountRegistry.read(file)).toEqual({ latest: expect.objectContaining({ seq: 3 }), corrupt: [] });
    expect((await MountRegistry.load(file)).count(B)).toBe(1);
  });

  it('on a full disk a change fails and is not made: memory and the newest valid slot keep the state last answered to Docker', async () => {
    const disk = new FakeFullDisk();
    const r = await MountRegistry.load(file, undefined, Date.now, disk.syncOps);
    await r.add(A, 'va', 'c1');
    await r.add(A, 'va', 'c2');
    // The next snapshot is larger than the slot it goes over: room for a part of it only.
    disk.free = 40;
    await expect(r.add(A, 'va', 'c3-with-a-long-mount-id')).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(disk.shortWrites).toBe(1);
    expect(r.count(A)).toBe(2);
    await expect(r.remove(A, 'c1')).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(r.count(A)).toBe(2);
    await expect(r.add(B, 'vb', 'x')).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(r.count(B)).toBe(0);
    expect(r.findByName('vb')).toBeUndefined();
    await expect(r.drop(A)).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(r.count(A)).toBe(2);
    // A restart (or a read) sees what Docker was last told.
    expect((await MountRegistry.load(file)).entries()).toEqual([{ datasetId: A, name: 'va', ids: ['c1', 'c2'] }]);
    // Space freed: changes are made and kept again.
    disk.free = Infinity;
    expect(await r.add(A, 'va', 'c3-with-a-long-mount-id')).toBe(3);
    expect(await r.remove(A, 'c1')).toBe(2);
    expect((await MountRegistry.load(file)).entries()).toEqual([
      { datasetId: A, name: 'va', ids: ['c2', 'c3-with-a-long-mount-id'] },
    ]);
  });

  it('reads the single file of earlier versions (no seq)', async () => {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, JSON.stringify({ version: 1, volumes: { [A]: { name: 'va', ids: ['c1'] } } }));
    const r = await MountRegistry.load(file);
    expect(r.entries()).toEqual([{ datasetId: A, name: 'va', ids: ['c1'] }]);
    await r.add(B, 'vb', 'x'); // seq 1, into slot 1: newer than the old file
    expect((await MountRegistry.load(file)).count(B)).toBe(1);
  });

  it('a Mount recorded as begun (pending) is known as never answered by the next process, until answered or retried', async () => {
    const first = await MountRegistry.load(file);
    await first.add(A, 'va', 'c1');
    expect(await first.addPending(A, 'va', 'c2')).toBe(true);
    expect(await first.addPending(A, 'va', 'c1')).toBe(false); // answered before: stays so
    expect(await first.addPending(B, 'vb', 'x')).toBe(true);
    await first.add(B, 'vb', 'x'); // answered
    expect(first.inheritedPending(A)).toEqual([]); // this process's own Mount in progress
    expect(first.entries()).toContainEqual({ datasetId: A, name: 'va', ids: ['c1', 'c2'] });
    // The plugin killed here: c2's Mount was never answered.
    const r = await MountRegistry.load(file);
    expect(r.inheritedPending(A)).toEqual(['c2']);
    expect(r.inheritedPending(B)).toEqual([]);
    expect(await r.removeIds(A, r.inheritedPending(A))).toBe(1);
    expect((await MountRegistry.load(file)).inheritedPending(A)).toEqual([]);
    // Docker retrying a cut Mount here: this process's own, pending until answered.
    await r.addPending(A, 'va', 'c3');
    const again = await MountRegistry.load(file);
    expect(again.inheritedPending(A)).toEqual(['c3']);
    expect(await again.addPending(A, 'va', 'c3')).toBe(true);
    expect(again.inheritedPending(A)).toEqual([]);
    await again.add(A, 'va', 'c3');
    expect((await MountRegistry.load(file)).inheritedPending(A)).toEqual([]);
  });

  it('writes the pending key only while a Mount is pending (a file without it reads as before)', async () => {
    const r = await MountRegistry.load(file);
    await r.addPending(A, 'va', 'c1');
    const slotOf = () => MountRegistry.read(file).latest?.volumes[A];
    expect(slotOf()?.pending).toEqual(['c1']);
    await r.add(A, 'va', 'c1');
    expect(slotOf()).toEqual({ name: 'va', ids: ['c1'], added: { c1: expect.any(Number) } });
  });

  it('drop forgets a volume', async () => {
    const r = await MountRegistry.load(file);
    await r.add(A, 'va', 'c1');
    await r.drop(A);
    expect((await MountRegistry.load(file)).entries()).toEqual([]);
  });

  it.each(['{"version": 2}', '', '{"vers'])(
    'a corrupt file (%p) is moved aside and reported, then starts empty',
    async (text) => {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, text);
      const problems: string[] = [];
      const r = await MountRegistry.load(file, (p) => problems.push(p));
      expect(r.entries()).toEqual([]);
      expect(problems).toEqual([expect.stringMatching(/not a valid mount registry \(moved to .*\.corrupt\)/)]);
      expect(fs.readFileSync(`${file}.corrupt`, 'utf8')).toBe(text);
      await r.add(A, 'va', 'c1');
      expect((await MountRegistry.load(file)).count(A)).toBe(1);
    },
  );
});
