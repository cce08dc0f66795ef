import { createHash, randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { execFileExec } from './exec';
import { closeLoopbackDrivers, LoopbackDriver } from './testing/closingLoopbackDriver';
import { SPARE_MTIME } from './loopbackSpares';
import { mount, unmount } from './blockdev';
import { destroyTempRoot, loopsUnder, makeTempRoot } from './testing/testSupport';

// Ends each driver's helper processes (see closingLoopbackDriver.ts).
afterEach(closeLoopbackDrivers);

jest.setTimeout(60_000);

const MiB = 1024 * 1024;
const roots: string[] = [];

async function pool(
  loopDiscovery: 'sysfs' | 'losetup' = 'sysfs',
): Promise<{ root: string; a: LoopbackDriver; b: LoopbackDriver }> {
  const root = await makeTempRoot('flocker-spares-test-');
  roots.push(root);
  return {
    root,
    a: new LoopbackDriver({ rootPath: root, instanceId: 'instance-a', loopDiscovery }),
    b: new LoopbackDriver({ rootPath: root, instanceId: 'instance-b', loopDiscovery }),
  };
}

afterAll(async () => {
  for (const root of roots) await destroyTempRoot(root);
});

/** Record temp files left in the pool (a claim writes its record's temp before it holds the lock). */
async function temps(root: string): Promise<string[]> {
  return (await fs.readdir(path.join(root, 'volumes'))).filter((n) => n.includes('.json.tmp-'));
}

async function dumpe2fs(file: string): Promise<string> {
  const r = await execFileExec('dumpe2fs', ['-h', file]);
  if (r.exitCode !== 0) throw new Error(r.stderr);
  return r.stdout;
}

describe('LoopbackDriver spares (issue 23)', () => {
  it('a spare is a formatted, never-mounted image outside the volume listing; a claim makes it the dataset’s volume, attached and mounted without a format', async () => {
    const { root, a } = await pool();
    const spare = await a.makeSpare(64 * MiB);
    expect(spare.size).toBe(64 * MiB);
    expect(await a.listSpares()).toEqual([spare]);
    expect(await a.listVolumes()).toEqual([]);
    const image = path.join(root, 'spares', `${spare.id}.img`);
    expect(await dumpe2fs(image)).toMatch(/Mount count:\s+0/);
    expect((await fs.stat(image)).mtimeMs).toBe(SPARE_MTIME * 1000);
    // Another size class: nothing to claim.
    expect(await a.claimSpare(randomUUID(), 32 * MiB)).toBeUndefined();
    const ds = randomUUID();
    const v = await a.claimSpare(ds, 64 * MiB, { onlyVolume: true, profile: 'gold' });
    // With the file system its never-written check read (the agent's mount of it reads no superblock again).
    expect(v).toEqual({
      blockdeviceId: spare.id,
      datasetId: ds,
      size: 64 * MiB,
      attachedTo: null,
      profile: 'gold',
      filesystem: { fstype: 'ext4', size: 64 * MiB },
    });
    expect(await a.listSpares()).toEqual([]);
    const { filesystem: _checked, ...volume } = v!;
    expect(await a.listVolumes()).toEqual([volume]);
    await a.attachVolume(spare.id, 'instance-a');
    const device = await a.getDevicePath(spare.id);
    const at = path.join(root, 'mnt');
    await fs.mkdir(at);
    await mount(device, at, { fstype: 'ext4' });
    try {
      expect((await fs.readdir(at)).filter((n) => n !== 'lost+found')).toEqual([]);
      await fs.writeFile(path.join(at, 'x'), 'data');
    } finally {
      await unmount(at);
    }
    await a.detachVolume(spare.id);
    await a.destroyVolume(spare.id);
    expect(await fs.readdir(path.join(root, 'volumes'))).toEqual([]);
  });

  it('never hands out a spare that was mounted or written: it is destroyed and the next one claimed', async () => {
    const { root, a } = await pool();
    const mounted = await a.makeSpare(32 * MiB);
    const written = await a.makeSpare(32 * MiB);
    const spares = path.join(root, 'spares');
    // Mounted once through a loop device (by hand), nothing written in it.
    const at = path.join(root, 'mnt');
    await fs.mkdir(at);
    const r = await execFileExec('mount', ['-o', 'loop', path.join(spares, `${mounted.id}.img`), at]);
    expect(r.exitCode).toBe(0);
    await unmount(at);
    // A raw write past the superblock (the superblock itself unchanged).
    const h = await fs.open(path.join(spares, `${written.id}.img`), 'r+');
    await h.write(Buffer.from('payload'), 0, 7, 16 * MiB);
    await h.close();
    expect(await a.claimSpare(randomUUID(), 32 * MiB)).toBeUndefined();
    expect(await fs.readdir(spares)).toEqual([]);
    expect(await a.listVolumes()).toEqual([]);
    expect(await temps(root)).toEqual([]);
    const good = await a.makeSpare(32 * MiB);
    expect((await a.claimSpare(randomUUID(), 32 * MiB))?.blockdeviceId).toBe(good.id);
  });

  it('two hosts claiming at once never get one spare twice', async () => {
    const { root, a, b } = await pool();
    const spare = await a.makeSpare(16 * MiB);
    const [x, y] = await Promise.all([a.claimSpare(randomUUID(), 16 * MiB), b.claimSpare(randomUUID(), 16 * MiB)]);
    expect([x, y].filter((v) => v !== undefined).map((v) => v?.blockdeviceId)).toEqual([spare.id]);
    expect((await a.listVolumes()).length).toBe(1);
    // The loser's record temp (written before it held the lock) is gone with its claim.
    expect(await temps(root)).toEqual([]);
  });

  it('onlyVolume: no claim for a dataset that has a volume already; the spare stays', async () => {
    const { root, a } = await pool();
    const ds = randomUUID();
    await a.createVolume(ds, 16 * MiB);
    const spare = await a.makeSpare(16 * MiB);
    await expect(a.claimSpare(ds, 16 * MiB, { onlyVolume: true })).rejects.toMatchObject({
      code: 'DATASET_HAS_VOLUME',
    });
    expect(await a.listSpares()).toEqual([spare]);
    expect(await temps(root)).toEqual([]);
  });

  it('onlyVolume: the guard finds the dataset in a record written with JSON escapes, and in a torn record naming it in capitals; other datasets’ records do not stop a claim', async () => {
    const { root, a } = await pool();
    const volumes = path.join(root, 'volumes');
    // Records of other datasets, one of them torn: no refusal (the guard reads only records that can name the dataset).
    for (let i = 0; i < 3; i++) await a.createVolume(randomUUID(), 16 * MiB);
    await fs.writeFile(path.join(volumes, `${randomUUID()}.json`), '{"version": 1, "dataset_id": "');
    const escaped = randomUUID();
    const escapedVolume = await a.createVolume(escaped, 16 * MiB);
    const recordFile = path.join(volumes, `${escapedVolume.blockdeviceId}.json`);
    const text = await fs.readFile(recordFile, 'utf8');
    // Every character of the dataset id as a \u escape: the same record to JSON.parse, no literal id in the text.
    const asEscapes = [...escaped].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('');
    await fs.writeFile(recordFile, text.replace(escaped, asEscapes));
    expect((await a.listVolumes()).find((v) => v.blockdeviceId === escapedVolume.blockdeviceId)?.datasetId).toBe(
      escaped,
    );
    const torn = randomUUID();
    const tornId = randomUUID();
    await fs.writeFile(
      path.join(volumes, `${tornId}.json`),
      `{"version": 1, "dataset_id": "${torn.toUpperCase()}", "si`,
    );
    const spare = await a.makeSpare(16 * MiB);
    await expect(a.claimSpare(escaped, 16 * MiB, { onlyVolume: true })).rejects.toMatchObject({
      code: 'DATASET_HAS_VOLUME',
      blockdeviceId: escapedVolume.blockdeviceId,
    });
    await expect(a.claimSpare(torn, 16 * MiB, { onlyVolume: true })).rejects.toMatchObject({
      code: 'DATASET_HAS_VOLUME',
      blockdeviceId: tornId,
    });
    await expect(a.createVolume(torn, 16 * MiB, { onlyVolume: true })).rejects.toMatchObject({
      code: 'DATASET_HAS_VOLUME',
    });
    expect(await a.listSpares()).toEqual([spare]);
    const fresh = randomUUID();
    expect(await a.claimSpare(fresh, 16 * MiB, { onlyVolume: true })).toMatchObject({
      blockdeviceId: spare.id,
      datasetId: fresh,
    });
    expect(await temps(root)).toEqual([]);
  });

  it('onlyVolume: the guard reads past its turns of the event loop (300 records) and still finds the dataset', async () => {
    const { root, a } = await pool();
    const volumes = path.join(root, 'volumes');
    await fs.mkdir(volumes, { recursive: true });
    const target = randomUUID();
    let targetVolume = '';
    for (let i = 0; i < 300; i++) {
      const id = randomUUID();
      if (i === 150) targetVolume = id;
      const record = {
        version: 1,
        blockdevice_id: id,
        dataset_id: i === 150 ? target : randomUUID(),
        size: 16 * MiB,
        attached_to: null,
        created: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
      };
      await fs.writeFile(path.join(volumes, `${id}.json`), JSON.stringify(record, null, 2) + '\n');
    }
    const spare = await a.makeSpare(16 * MiB);
    await expect(a.claimSpare(target, 16 * MiB, { onlyVolume: true })).rejects.toMatchObject({
      code: 'DATASET_HAS_VOLUME',
      blockdeviceId: targetVolume,
    });
    expect(await a.listSpares()).toEqual([spare]);
    await a.destroySpare(spare.id);
  });

  it('crash states converge: a make cut off is tidied (its own at once, another host’s when old); a claim cut off between the move and the record leaves an orphan image, or before the rename a record temp, that repair() removes', async () => {
    const { root, a, b } = await pool();
    const spares = path.join(root, 'spares');
    await a.makeSpare(16 * MiB);
    // A make of a killed a, and one of b (still making, as far as a knows).
    const [ownTag, otherTag] = ['instance-a', 'instance-b'].map((i) =>
      createHash('sha256').update(i).digest('hex').slice(0, 8),
    );
    const ownMaking = path.join(spares, `.making-${ownTag}-${randomUUID()}.img`);
    const otherMaking = path.join(spares, `.making-${otherTag}-${randomUUID()}.img`);
    for (const f of [ownMaking, otherMaking]) await fs.writeFile(f, '');
    expect(await a.tidySpares()).toEqual([path.basename(ownMaking)]);
    const hourAgo = new Date(Date.now() - 3600_000);
    await fs.utimes(otherMaking, hourAgo, hourAgo);
    expect(await a.tidySpares()).toEqual([path.basename(otherMaking)]);
    expect((await a.listSpares()).length).toBe(1);
    // A claim killed after moving the image, before its record: an orphan (mtime SPARE_MTIME: old).
    const [spare] = await a.listSpares();
    await fs.rename(path.join(spares, `${spare.id}.img`), path.join(root, 'volumes', `${spare.id}.img`));
    expect(await a.listVolumes()).toEqual([]);
    expect(await b.claimSpare(randomUUID(), 16 * MiB)).toBeUndefined();
    expect((await a.repair()).removedOrphanImages).toEqual([path.join(root, 'volumes', `${spare.id}.img`)]);
    expect(await fs.readdir(path.join(root, 'volumes'))).toEqual([]);
    // A claim (or create) killed between its record's temp file and the rename: the temp goes once old.
    const oldTemp = path.join(root, 'volumes', `${randomUUID()}.json.tmp-4242-0badf00d`);
    const youngTemp = path.join(root, 'volumes', `${randomUUID()}.json.tmp-4243-0badf00d`);
    for (const f of [oldTemp, youngTemp]) await fs.writeFile(f, '{}');
    await fs.utimes(oldTemp, hourAgo, hourAgo);
    expect((await a.repair()).removedRecordTemps).toEqual([oldTemp]);
    expect(await fs.readdir(path.join(root, 'volumes'))).toEqual([path.basename(youngTemp)]);
  });

  describe('pre-attached spares', () => {
    const devicesOf = async (root: string): Promise<Record<string, string[]>> => {
      const out: Record<string, string[]> = {};
      for (const l of await loopsUnder(root)) {
        const key = path.relative(root, l.backingFile);
        out[key] = [...(out[key] ?? []), l.device];
      }
      return out;
    };

    it('a make binds the spare to a loop device; a claim with attach hands that device out, attached here in the one record it writes, and the device follows the image', async () => {
      const { root, a } = await pool();
      const spare = await a.makeSpare(32 * MiB);
      const [device] = (await devicesOf(root))[`spares/${spare.id}.img`] ?? [];
      expect(device).toMatch(/^\/dev\/loop\d+$/);
      // Binding changes nothing in the image: the never-written proof still holds.
      expect((await fs.stat(path.join(root, 'spares', `${spare.id}.img`))).mtimeMs).toBe(SPARE_MTIME * 1000);
      const ds = randomUUID();
      const v = await a.claimSpare(ds, 32 * MiB, { onlyVolume: true, attach: true });
      expect(v).toEqual({
        blockdeviceId: spare.id,
        datasetId: ds,
        size: 32 * MiB,
        attachedTo: 'instance-a',
        devicePath: device,
        filesystem: { fstype: 'ext4', size: 32 * MiB },
      });
      expect(await devicesOf(root)).toEqual({ [`volumes/${spare.id}.img`]: [device] });
      expect(await a.listVolumes()).toEqual([
        { blockdeviceId: spare.id, datasetId: ds, size: 32 * MiB, attachedTo: 'instance-a' },
      ]);
      expect(await a.getDevicePath(spare.id)).toBe(device);
      // Nothing to repair: the volume is attached here on its device.
      expect(await a.repair()).toMatchObject({ reattached: [], detachedStale: [] });
      const at = path.join(root, 'mnt');
      await fs.mkdir(at);
      await mount(device, at, { fstype: 'ext4' });
      await fs.writeFile(path.join(at, 'x'), 'data');
      await unmount(at);
      await a.detachVolume(spare.id);
      await a.destroyVolume(spare.id);
      expect(await devicesOf(root)).toEqual({});
    });

    it('a claim without attach leaves no device: an unattached volume has none', async () => {
      const { root, a } = await pool();
      const spare = await a.makeSpare(16 * MiB);
      expect(await a.claimSpare(randomUUID(), 16 * MiB)).toMatchObject({ blockdeviceId: spare.id, attachedTo: null });
      expect(await devicesOf(root)).toEqual({});
    });

    it('a spare without a device (unbound by hand, or made on another kernel) is attached by the claim', async () => {
      const { root, a } = await pool();
      const spare = await a.makeSpare(16 * MiB);
      for (const d of Object.values(await devicesOf(root)).flat()) await execFileExec('losetup', ['-d', d]);
      const v = await a.claimSpare(randomUUID(), 16 * MiB, { attach: true });
      expect(v?.attachedTo).toBe('instance-a');
      expect(await devicesOf(root)).toEqual({ [`volumes/${spare.id}.img`]: [v?.devicePath] });
    });

    it('bindSpares binds a device again to each spare that lost its own (./dev down, reboot, losetup -D), one each, writing nothing; a claim hands it out', async () => {
      const { root, a, b } = await pool();
      const spares = path.join(root, 'spares');
      const [s1, s2, s3] = [await a.makeSpare(16 * MiB), await a.makeSpare(16 * MiB), await a.makeSpare(16 * MiB)];
      const [keptDevice] = (await devicesOf(root))[`spares/${s3.id}.img`] ?? [];
      for (const id of [s1.id, s2.id])
        for (const d of (await devicesOf(root))[`spares/${id}.img`] ?? []) await execFileExec('losetup', ['-d', d]);
      expect(Object.keys(await devicesOf(root))).toEqual([`spares/${s3.id}.img`]);
      // Two hosts of the pool at once: each spare gets one device, not one per host.
      const [x, y] = await Promise.all([a.bindSpares(), b.bindSpares()]);
      expect([...x, ...y].sort()).toEqual([s1.id, s2.id].sort());
      const devs = await devicesOf(root);
      expect(Object.keys(devs).sort()).toEqual([s1, s2, s3].map((s) => `spares/${s.id}.img`).sort());
      expect(Object.values(devs).every((d) => d.length === 1)).toBe(true);
      expect(devs[`spares/${s3.id}.img`]).toEqual([keptDevice]);
      // Nothing written: the never-written proof holds, and nothing more to bind.
      for (const s of [s1, s2])
        expect((await fs.stat(path.join(spares, `${s.id}.img`))).mtimeMs).toBe(SPARE_MTIME * 1000);
      expect(await a.bindSpares()).toEqual([]);
      // A claim of a re-bound spare is pre-attached: its device handed out, no second one.
      const [device] = devs[`spares/${s1.id}.img`] ?? [];
      const v = await a.claimSpare(randomUUID(), 16 * MiB, { attach: true });
      const claimedDevice = (await devicesOf(root))[`volumes/${v?.blockdeviceId}.img`];
      expect(claimedDevice).toEqual([v?.devicePath]);
      expect([device, ...(devs[`spares/${s2.id}.img`] ?? []), keptDevice]).toContain(v?.devicePath);
      expect(Object.values(await devicesOf(root)).flat()).toHaveLength(3);
    });

    // sysfs: the helper's flushbuf (O_EXCL + BLKFLSBUF); losetup (no helper): an O_EXCL open and an fsync.
    for (const discovery of ['sysfs', 'losetup'] as const)
      it(`never hands out a spare written through its device: still mounted (busy), or written raw by an opener that still holds it (the claim flushes the device first): ${discovery}`, async () => {
        const { root, a } = await pool(discovery);
        const mounted = await a.makeSpare(32 * MiB);
        const rawWritten = await a.makeSpare(32 * MiB);
        const devs = await devicesOf(root);
        const [mountedDevice] = devs[`spares/${mounted.id}.img`] ?? [];
        const [rawDevice] = devs[`spares/${rawWritten.id}.img`] ?? [];
        const at = path.join(root, 'mnt');
        await fs.mkdir(at);
        await mount(mountedDevice, at, { fstype: 'ext4' });
        const h = await fs.open(rawDevice, 'r+');
        try {
          // Only in the device's page cache so far: the image and its mtime do not show it yet.
          await h.write(Buffer.from('payload'), 0, 7, 16 * MiB);
          expect((await fs.stat(path.join(root, 'spares', `${rawWritten.id}.img`))).mtimeMs).toBe(SPARE_MTIME * 1000);
          expect(await a.claimSpare(randomUUID(), 32 * MiB, { attach: true })).toBeUndefined();
        } finally {
          await h.close();
          await unmount(at);
        }
        expect(await fs.readdir(path.join(root, 'spares'))).toEqual([]);
        expect(await a.listVolumes()).toEqual([]);
        // The mounted one's device could not be detached while mounted (its image is gone): the next tidy does it.
        expect(Object.keys(await devicesOf(root)).every((f) => f.startsWith('spares/'))).toBe(true);
        await a.tidySpares();
        expect(await devicesOf(root)).toEqual({});
      });

    it('tidy detaches the devices no spare needs (a second one of a spare, a destroyed spare’s, a removed make’s) and keeps those of spares and of another host’s make in progress', async () => {
      const { root, a, b } = await pool();
      const spares = path.join(root, 'spares');
      const kept = await a.makeSpare(16 * MiB);
      const [keptDevice] = (await devicesOf(root))[`spares/${kept.id}.img`] ?? [];
      const second = (
        await execFileExec('losetup', ['--find', '--show', path.join(spares, `${kept.id}.img`)])
      ).stdout.trim();
      const gone = await b.makeSpare(16 * MiB);
      const [goneDevice] = (await devicesOf(root))[`spares/${gone.id}.img`] ?? [];
      await fs.rm(path.join(spares, `${gone.id}.img`)); // as a make or destroy killed between rm and detach
      const [ownTag, otherTag] = ['instance-a', 'instance-b'].map((i) =>
        createHash('sha256').update(i).digest('hex').slice(0, 8),
      );
      const ownMaking = path.join(spares, `.making-${ownTag}-${randomUUID()}.img`);
      const otherMaking = path.join(spares, `.making-${otherTag}-${randomUUID()}.img`);
      const bound: string[] = [];
      for (const f of [ownMaking, otherMaking]) {
        await fs.writeFile(f, Buffer.alloc(MiB));
        bound.push((await execFileExec('losetup', ['--find', '--show', f])).stdout.trim());
      }
      expect(await a.tidySpares()).toEqual([path.basename(ownMaking)]);
      const left = await loopsUnder(root);
      expect(left.map((l) => l.device).sort()).toEqual([keptDevice, bound[1]].sort());
      expect(left.map((l) => l.device)).not.toContain(second);
      expect(left.map((l) => l.device)).not.toContain(goneDevice);
      // destroySpare takes the spare's device along.
      await a.destroySpare(kept.id);
      expect((await loopsUnder(root)).map((l) => l.device)).toEqual([bound[1]]);
      await execFileExec('losetup', ['-d', bound[1]]);
    });

    it('a claim killed after the move, before its record: repair() detaches the orphan image’s device and removes it', async () => {
      const { root, a } = await pool();
      const spare = await a.makeSpare(16 * MiB);
      await fs.rename(path.join(root, 'spares', `${spare.id}.img`), path.join(root, 'volumes', `${spare.id}.img`));
      expect(Object.keys(await devicesOf(root))).toEqual([`volumes/${spare.id}.img`]);
      const report = await a.repair();
      expect(report.detachedStale.length).toBe(1);
      expect(report.removedOrphanImages).toEqual([path.join(root, 'volumes', `${spare.id}.img`)]);
      expect(await devicesOf(root)).toEqual({});
    });

    it('two hosts claiming with attach at once: one gets the spare and its device, the other nothing', async () => {
      const { root, a, b } = await pool();
      const spare = await a.makeSpare(16 * MiB);
      const [x, y] = await Promise.all([
        a.claimSpare(randomUUID(), 16 * MiB, { attach: true }),
        b.claimSpare(randomUUID(), 16 * MiB, { attach: true }),
      ]);
      const got = [x, y].filter((v) => v !== undefined);
      expect(got.map((v) => v?.blockdeviceId)).toEqual([spare.id]);
      expect(await devicesOf(root)).toEqual({ [`volumes/${spare.id}.img`]: [got[0]?.devicePath] });
    });
  });
});
