import {
  classifyPoolFile,
  compareFencedNames,
  copyTempName,
  fencedImageName,
  fencedInUseFromFirstLook,
  isFencedBinding,
  nextFenceSequence,
  planFenceRecovery,
  removableFencedImages,
} from './fencing';
import { errnoFromMessage, immutableFailureReason, parseLsattrImmutable } from './immutable';

const A = '0b9a6f1e-4c2d-4e8f-9a1b-2c3d4e5f6a7b';
const B = 'f1e2d3c4-b5a6-4978-8a9b-0c1d2e3f4a5b';

describe('fencing names', () => {
  it('names a fenced image by its sequence number, the UTC time of the fence and a random suffix', () => {
    const name = fencedImageName(A, 7, new Date('2026-12-03T22:24:33.123Z'), 'deadbeef');
    expect(name).toBe(`${A}.img.fenced-000007-20261203T222433123Z-deadbeef`);
    expect(classifyPoolFile(name)).toEqual({ kind: 'fenced', id: A });
    expect(classifyPoolFile(fencedImageName(A, 1234567, new Date(), '00000000'))).toEqual({ kind: 'fenced', id: A });
    // Names from before the sequence are still fenced files.
    expect(classifyPoolFile(`${A}.img.fenced-20261203T222433123Z-deadbeef`)).toEqual({ kind: 'fenced', id: A });
    expect(() => fencedImageName(A, 1, new Date(), 'xyz')).toThrow(/8 hex digits/);
    for (const bad of [0, -1, 1.5, Number.NaN])
      expect(() => fencedImageName(A, bad, new Date(), 'deadbeef')).toThrow(/sequence/);
  });

  it('numbers the next fence of a volume one past its largest existing fence; names without a number count as 0', () => {
    expect(nextFenceSequence([`${A}.img`, `${A}.json`], A)).toBe(1);
    expect(nextFenceSequence([`${A}.img.fenced-20261203T100000000Z-00000001`], A)).toBe(1);
    const names = [
      `${A}.img.fenced-000002-20261203T100000000Z-00000001`,
      `${A}.img.fenced-000009-20261201T100000000Z-00000002`,
      `${B}.img.fenced-000040-20261203T100000000Z-00000003`,
    ];
    expect(nextFenceSequence(names, A)).toBe(10);
    expect(nextFenceSequence(names, B)).toBe(41);
    expect(
      nextFenceSequence(
        [`${A}.img.fenced-999999-20261203T100000000Z-00000001`, `${A}.img.fenced-1000000-20261203T100000000Z-00000001`],
        A,
      ),
    ).toBe(1_000_001);
  });

  it('classifies pool files; records, record temps and strangers are none of its business', () => {
    expect(classifyPoolFile(`${A}.img`)).toEqual({ kind: 'image', id: A });
    expect(classifyPoolFile(copyTempName(A, 123, '0a1b2c3d'))).toEqual({ kind: 'copyTemp', id: A });
    // The earlier copy-only fence's temp.
    expect(classifyPoolFile(`${A}.img.fence-0a1b2c3d`)).toEqual({ kind: 'copyTemp', id: A });
    for (const other of [
      `${A}.json`,
      `${A}.json.tmp-1-0a1b2c3d`,
      `${A}.img.fenced-x`,
      'pool.lock',
      `../${A}.img`,
      `${A}.img.fenced-20261203T222433123Z-deadbeef.tmp`,
    ]) {
      expect(classifyPoolFile(other)).toBeNull();
    }
  });
});

describe('planFenceRecovery', () => {
  const f1 = `${A}.img.fenced-20261203T100000000Z-00000001`;
  const f2 = `${A}.img.fenced-20261203T110000000Z-00000002`;
  const temp = `${A}.img.tmp-77-0a1b2c3d`;

  it('has nothing to do for a pool without fences, or with finished ones', () => {
    expect(planFenceRecovery([`${A}.img`, `${A}.json`, `${B}.img`, `${B}.json`])).toEqual([]);
    expect(planFenceRecovery([`${A}.img`, `${A}.json`, f1])).toEqual([]);
  });

  it('restores the newest fenced image of a volume without <id>.img and removes copy temps', () => {
    expect(planFenceRecovery([`${A}.json`, f2, f1, temp, `${B}.img`, `${B}.json`])).toEqual([
      { id: A, restoreFrom: f2, removeTemps: [temp] },
    ]);
    // Interrupted after the copy was renamed in: only the temp of another crash is left.
    expect(planFenceRecovery([`${A}.img`, `${A}.json`, f1, temp])).toEqual([
      { id: A, restoreFrom: null, removeTemps: [temp] },
    ]);
  });

  it('restores the most recent fence by its sequence number, not by the wall clock, which may have stepped back', () => {
    // Fence 1 at 11:00, then the clock steps back an hour; fence 2 at 10:00 is the newer one.
    const first = fencedImageName(A, 1, new Date('2026-12-03T11:00:00.000Z'), 'ffffffff');
    const second = fencedImageName(
      A,
      nextFenceSequence([`${A}.json`, first], A),
      new Date('2026-12-03T10:00:00.000Z'),
      '00000000',
    );
    // Crash between S1 and S2 of the second fence: no <id>.img.
    expect(planFenceRecovery([`${A}.json`, first, second])).toEqual([{ id: A, restoreFrom: second, removeTemps: [] }]);
    expect(planFenceRecovery([`${A}.json`, second, first])).toEqual([{ id: A, restoreFrom: second, removeTemps: [] }]);
    // A fence numbered after one from before sequences, whatever their stamps; numbers compare as numbers.
    const legacy = `${A}.img.fenced-20261203T120000000Z-00000001`;
    const numbered = fencedImageName(
      A,
      nextFenceSequence([legacy], A),
      new Date('2026-12-03T09:00:00.000Z'),
      '00000002',
    );
    expect(planFenceRecovery([legacy, numbered])[0].restoreFrom).toBe(numbered);
    const n999999 = fencedImageName(A, 999_999, new Date('2026-12-03T12:00:00.000Z'), '00000003');
    const n1000000 = fencedImageName(A, 1_000_000, new Date('2026-12-03T08:00:00.000Z'), '00000004');
    expect(planFenceRecovery([n999999, n1000000])[0].restoreFrom).toBe(n1000000);
    // Old names among themselves: by their stamp, as before.
    expect(planFenceRecovery([f2, f1])[0].restoreFrom).toBe(f2);
    expect([n1000000, numbered, legacy, n999999].sort(compareFencedNames)).toEqual([
      legacy,
      numbered,
      n999999,
      n1000000,
    ]);
  });

  it('can be limited to one volume', () => {
    const names = [f1, `${B}.img.fenced-20261203T100000000Z-00000003`];
    expect(planFenceRecovery(names, B).map((p) => p.id)).toEqual([B]);
    expect(planFenceRecovery(names).map((p) => p.id)).toEqual([A, B].sort());
  });
});

describe('isFencedBinding', () => {
  const dirs = ['/pool/volumes', '/real/pool/volumes'];
  const binding = (backingFile: string, deleted = false) => ({ device: '/dev/loop7', backingFile, deleted });

  it('matches devices of fenced images and of deleted images of the pool only', () => {
    expect(isFencedBinding(binding(`/real/pool/volumes/${A}.img.fenced-20261203T100000000Z-00000001`), dirs)).toBe(
      true,
    );
    expect(isFencedBinding(binding(`/pool/volumes/${A}.img.fenced-20261203T100000000Z-00000001`, true), dirs)).toBe(
      true,
    );
    expect(isFencedBinding(binding(`/pool/volumes/${A}.img`, true), dirs)).toBe(true);
    // A volume's live device, another directory, a stranger.
    expect(isFencedBinding(binding(`/pool/volumes/${A}.img`), dirs)).toBe(false);
    expect(isFencedBinding(binding(`/elsewhere/${A}.img.fenced-20261203T100000000Z-00000001`), dirs)).toBe(false);
    expect(isFencedBinding(binding('/pool/volumes/other.img', true), dirs)).toBe(false);
  });
});

describe('removableFencedImages', () => {
  const fa = `${A}.img.fenced-20261203T100000000Z-00000001`;
  const fb = `${B}.img.fenced-20261203T100000000Z-00000002`;

  it('removes fenced images no device uses, unless one is the only copy of an existing volume', () => {
    // A: restored and unused -> goes. B: no image but a record -> an interrupted fence, keep.
    expect(removableFencedImages([`${A}.img`, `${A}.json`, fa, `${B}.json`, fb], new Set(), new Set([A, B]))).toEqual([
      fa,
    ]);
    // In use by the old holder's loop device -> stays.
    expect(removableFencedImages([`${A}.img`, `${A}.json`, fa], new Set([fa]), new Set([A]))).toEqual([]);
    // Volume destroyed (no record, no image): an orphan.
    expect(removableFencedImages([fb], new Set(), new Set())).toEqual([fb]);
  });
});

describe('fencedInUseFromFirstLook', () => {
  const dirs = ['/pool/volumes', '/real/pool/volumes'];
  const fa = `${A}.img.fenced-20261203T100000000Z-00000001`;
  const binding = (device: string, backingFile: string, deleted = false) => ({ device, backingFile, deleted });

  it('answers from the first look while it shows no fenced binding: live volumes, strangers, other directories', () => {
    const look = [
      binding('/dev/loop1', `/real/pool/volumes/${A}.img`),
      binding('/dev/loop2', `/real/pool/volumes/${B}.img`),
      // Not the pool's (poolBindings leaves these out; a fenced name elsewhere is no fenced binding either).
      binding('/dev/loop3', `/elsewhere/${fa}`),
    ];
    expect(fencedInUseFromFirstLook(look, dirs)).toEqual(new Set([`${A}.img`, `${B}.img`, fa]));
    expect(fencedInUseFromFirstLook([], dirs)).toEqual(new Set());
    // Deleted non-pool files are no fenced bindings, and not in use by name.
    expect(fencedInUseFromFirstLook([binding('/dev/loop4', '/elsewhere/x.img', true)], dirs)).toEqual(new Set());
  });

  it('asks for a fresh look once the first showed a fenced binding (the release may have detached it since)', () => {
    expect(fencedInUseFromFirstLook([binding('/dev/loop1', `/pool/volumes/${fa}`)], dirs)).toBeNull();
    expect(
      fencedInUseFromFirstLook(
        [binding('/dev/loop1', `/real/pool/volumes/${B}.img`), binding('/dev/loop2', `/real/pool/volumes/${fa}`, true)],
        dirs,
      ),
    ).toBeNull();
    // A deleted image of the pool counts as fenced (isFencedBinding): a release detaches its device.
    expect(fencedInUseFromFirstLook([binding('/dev/loop1', `/pool/volumes/${A}.img`, true)], dirs)).toBeNull();
  });

  it('leaves no fenced file it answers for removable while a device of the first look serves it', () => {
    // Whatever the first look answers, removableFencedImages never removes a fenced file a device of it serves:
    // a look with such a device is answered null.
    const names = [`${A}.img`, `${A}.json`, fa];
    const withDevice = [binding('/dev/loop1', `/pool/volumes/${fa}`)];
    expect(fencedInUseFromFirstLook(withDevice, dirs)).toBeNull();
    const without = fencedInUseFromFirstLook([binding('/dev/loop1', `/pool/volumes/${A}.img`)], dirs);
    if (without === null) throw new Error('a look without a fenced binding needs no second one');
    expect(removableFencedImages(names, without, new Set([A]))).toEqual([fa]);
  });
});

describe('immutable flag helpers', () => {
  it('parses lsattr and maps chattr messages to errno names with plain reasons', () => {
    expect(parseLsattrImmutable('----i---------e------- /pool/x\n')).toBe(true);
    expect(parseLsattrImmutable('--------------e------- /pool/x\n')).toBe(false);
    expect(errnoFromMessage('chattr: Operation not supported while setting flags on /p/x')).toBe('EOPNOTSUPP');
    expect(errnoFromMessage('chattr: Inappropriate ioctl for device while reading flags on /p/x')).toBe('ENOTTY');
    expect(errnoFromMessage('chattr: Operation not permitted while setting flags on /p/x')).toBe('EPERM');
    expect(immutableFailureReason('EPERM')).toMatch(/CAP_LINUX_IMMUTABLE/);
    expect(immutableFailureReason('ENOTTY')).toMatch(/does not support the immutable flag/);
  });
});
