import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
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
    expect(fs.readdirSync(path.dirname(file))).toEqual(['plugin-mounts.json']); // no temp files left
  });

  it('drop forgets a volume', async () => {
    const r = await MountRegistry.load(file);
    await r.add(A, 'va', 'c1');
    await r.drop(A);
    expect((await MountRegistry.load(file)).entries()).toEqual([]);
  });

  it.each(['{"version": 2}', '', '{"vers'])('a corrupt file (%p) is moved aside and reported, then starts empty', async (text) => {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
    const problems: string[] = [];
    const r = await MountRegistry.load(file, (p) => problems.push(p));
    expect(r.entries()).toEqual([]);
    expect(problems).toEqual([expect.stringMatching(/not a valid mount registry \(moved to .*\.corrupt\)/)]);
    expect(fs.readFileSync(`${file}.corrupt`, 'utf8')).toBe(text);
    await r.add(A, 'va', 'c1');
    expect((await MountRegistry.load(file)).count(A)).toBe(1);
  });
});
