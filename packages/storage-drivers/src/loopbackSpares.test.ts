import {
  devicesOfSpare,
  makingFiles,
  makingFilesToRemove,
  makingName,
  readExt4Superblock,
  SPARE_MTIME,
  spareDevicesToDetach,
  spareIds,
  sparesWithoutDevice,
  spareVerdict,
  type Ext4Superblock,
} from './loopbackSpares';

const ID = '0b7c9a1e-1f2a-4c3d-9e8f-0123456789ab';
const GiB = 1024 * 1024 * 1024;

describe('spareVerdict (the never-written proof)', () => {
  const fresh: Ext4Superblock = { magic: 0xef53, mountCount: 0, lastMountTime: 0, bytes: GiB };
  const image = { size: GiB, mtimeSec: SPARE_MTIME };

  it('accepts a never-mounted ext4 spanning the image whose mtime is still the make’s', () => {
    expect(spareVerdict(fresh, image)).toEqual({ ok: true, bytes: image.size });
  });

  it.each([
    ['no superblock', null, image, /no ext4/],
    ['another signature', { ...fresh, magic: 0x1234 }, image, /no ext4/],
    ['mounted once (mount count)', { ...fresh, mountCount: 1 }, image, /mounted 1 time/],
    ['a last mount time', { ...fresh, lastMountTime: 1_700_000_000 }, image, /last mounted/],
    ['a file system smaller than the image', { ...fresh, bytes: GiB / 2 }, image, /spans/],
    ['an image written since (mtime moved)', fresh, { ...image, mtimeSec: SPARE_MTIME + 1 }, /written since/],
  ])('refuses %s', (_what, sb, img, reason) => {
    const v = spareVerdict(sb, img);
    expect(v.ok).toBe(false);
    if (!v.ok) expect(v.reason).toMatch(reason);
  });

  it('reads the superblock fields from the bytes mkfs writes (32- and 64-bit block counts)', () => {
    const sb = Buffer.alloc(1024);
    sb.writeUInt32LE(262144, 0x04); // blocks
    sb.writeUInt32LE(2, 0x18); // 4 KiB blocks
    sb.writeUInt32LE(7, 0x2c); // last mount time
    sb.writeUInt16LE(3, 0x34); // mount count
    sb.writeUInt16LE(0xef53, 0x38);
    expect(readExt4Superblock(sb)).toEqual({ magic: 0xef53, mountCount: 3, lastMountTime: 7, bytes: GiB });
    sb.writeUInt32LE(0x80, 0x60); // INCOMPAT_64BIT
    sb.writeUInt32LE(1, 0x150);
    expect(readExt4Superblock(sb)?.bytes).toBe((2 ** 32 + 262144) * 4096);
    expect(readExt4Superblock(Buffer.alloc(100))).toBeNull();
  });
});

describe('spare file names and the tidy after a crash', () => {
  it('lists complete spares only; a make in progress is never one', () => {
    const names = [`${ID}.img`, makingName('abcdef01', ID), `${ID}.json`, 'junk.img', '.making-x-y.img'];
    expect(spareIds(names)).toEqual([ID]);
    expect(makingFiles(names)).toEqual([{ name: makingName('abcdef01', ID), tag: 'abcdef01' }]);
  });

  it('removes every make of this instance (they died with its last process) and another’s only once old', () => {
    const own = { name: makingName('aaaaaaaa', ID), tag: 'aaaaaaaa', ageMs: 5 };
    const othersYoung = { name: makingName('bbbbbbbb', ID), tag: 'bbbbbbbb', ageMs: 5 };
    const othersOld = { name: makingName('cccccccc', ID), tag: 'cccccccc', ageMs: 600_000 };
    expect(makingFilesToRemove([own, othersYoung, othersOld], 'aaaaaaaa', 600_000)).toEqual([own.name, othersOld.name]);
  });
});

describe('pre-attached spares: which loop devices serve a spare, which a tidy detaches', () => {
  const dirs = ['/pool/spares', '/real/pool/spares'];
  const other = 'ffffffff-1f2a-4c3d-9e8f-0123456789ab';
  const bind = (device: string, backingFile: string, deleted = false) => ({ device, backingFile, deleted });

  it('devicesOfSpare: the spare image’s live devices under either path of the directory, lowest number first', () => {
    const bindings = [
      bind('/dev/loop12', `/real/pool/spares/${ID}.img`),
      bind('/dev/loop3', `/pool/spares/${ID}.img`),
      bind('/dev/loop4', `/pool/spares/${ID}.img`, true),
      bind('/dev/loop5', `/pool/volumes/${ID}.img`),
      bind('/dev/loop6', `/pool/spares/${other}.img`),
    ];
    expect(devicesOfSpare(bindings, dirs, ID)).toEqual(['/dev/loop3', '/dev/loop12']);
    expect(devicesOfSpare(bindings, dirs, '0b7c9a1e-0000-4c3d-9e8f-0123456789ab')).toEqual([]);
  });

  it('spareDevicesToDetach: deleted images, every device of a spare but its lowest, removed makes; nothing else', () => {
    const removedMaking = makingName('aaaaaaaa', ID);
    const runningMaking = makingName('bbbbbbbb', other);
    const bindings = [
      bind('/dev/loop9', `/pool/spares/${ID}.img`),
      bind('/dev/loop2', `/real/pool/spares/${ID}.img`),
      bind('/dev/loop3', `/pool/spares/${other}.img`, true),
      bind('/dev/loop4', `/pool/spares/${removedMaking}`),
      bind('/dev/loop5', `/pool/spares/${runningMaking}`),
      bind('/dev/loop6', `/pool/volumes/${ID}.img`, true),
      bind('/dev/loop7', `/elsewhere/spares/${other}.img`, true),
    ];
    expect(spareDevicesToDetach(bindings, dirs, [removedMaking])).toEqual(['/dev/loop3', '/dev/loop4', '/dev/loop9']);
    expect(spareDevicesToDetach([], dirs, [removedMaking])).toEqual([]);
  });

  it('sparesWithoutDevice: spares whose image no live device serves under either path (after ./dev down, a reboot, losetup -D)', () => {
    const third = 'eeeeeeee-1f2a-4c3d-9e8f-0123456789ab';
    const bindings = [
      bind('/dev/loop2', `/real/pool/spares/${ID}.img`),
      bind('/dev/loop3', `/pool/spares/${other}.img`, true), // its image replaced: serves nothing
      bind('/dev/loop4', `/pool/volumes/${third}.img`), // a volume of that id, not the spare
      bind('/dev/loop5', `/elsewhere/spares/${third}.img`),
    ];
    expect(sparesWithoutDevice(bindings, dirs, [ID, other, third])).toEqual([other, third]);
    expect(sparesWithoutDevice([], dirs, [ID])).toEqual([ID]);
    expect(sparesWithoutDevice(bindings, dirs, [])).toEqual([]);
  });
});
