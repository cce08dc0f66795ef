import { ReadOnlyMounts, readOnlyCause, readOnlyMessage } from './readOnlyMounts';

describe('readOnlyCause (mountinfo options)', () => {
  it.each([
    [{ options: 'rw,relatime', superOptions: 'rw' }, undefined],
    [{ options: 'rw,relatime', superOptions: 'rw,errors=remount-ro' }, undefined],
    [{}, undefined],
    // ext4 after a write error, kernel 6.12 on (measured on 6.18: the mount's own options stay rw)
    [{ options: 'rw,relatime', superOptions: 'rw,emergency_ro' }, 'error'],
    // the same before 6.12: the file system remounted itself read-only
    [{ options: 'rw,relatime', superOptions: 'ro,errors=remount-ro' }, 'error'],
    [{ options: 'rw,relatime', superOptions: 'rw,shutdown' }, 'shutdown'],
    // a mount made read-only by hand (mount -o ro, or a bind remount)
    [{ options: 'ro,relatime', superOptions: 'ro' }, 'mount'],
    [{ options: 'ro,relatime', superOptions: 'rw' }, 'mount'],
    // a word that merely contains "ro" is not "ro"
    [{ options: 'rw,errors=remount-ro', superOptions: 'rw,errors=remount-ro' }, undefined],
  ] as const)('%j → %s', (m, cause) => {
    expect(readOnlyCause(m)).toBe(cause);
  });
});

describe('readOnlyMessage', () => {
  it('says what happened, the likely cause, and what recovers it (free space, stop containers, unmount)', () => {
    const m = readOnlyMessage('error', '/flocker/d');
    expect(m).toMatch(/went read-only after a write error/);
    expect(m).toMatch(/storage is full/);
    expect(m).toMatch(
      /Free space there, stop the containers that use the volume, then unmount it \(umount \/flocker\/d\)/,
    );
    expect(m).toMatch(/mounts it again/);
    // The old file system lives on while another mount namespace holds a copy of the mount: how to find it.
    expect(m).toMatch(/Read-only again after that: .*grep \/flocker\/d \/proc\/\*\/mountinfo/);
  });
});

describe('ReadOnlyMounts', () => {
  const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
  const B = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
  const healthy = { mountPoint: '/flocker/a', options: 'rw', superOptions: 'rw' };
  const broken = { mountPoint: '/flocker/a', options: 'rw', superOptions: 'rw,emergency_ro' };
  const mounted = [
    { datasetId: A, path: '/flocker/a' },
    { datasetId: B, path: '/flocker/b' },
  ];

  it('an error for each dataset mounted at a read-only mount, since the table it was first seen in; gone once healthy', () => {
    const r = new ReadOnlyMounts();
    expect(r.saw([healthy], 't0')).toEqual([]);
    expect(r.errors(mounted)).toEqual([]);
    expect(r.saw([broken, { mountPoint: '/other', superOptions: 'ro' }], 't1')).toEqual(['/flocker/a', '/other']);
    expect(r.saw([broken], 't2')).toEqual([]);
    expect(r.errors(mounted)).toEqual([
      {
        dataset_id: A,
        action: 'observe',
        code: 'FILESYSTEM_READ_ONLY',
        message: readOnlyMessage('error', '/flocker/a'),
        attempts: 1,
        since: 't1',
      },
    ]);
    // unmounted and mounted again by the agent: a healthy file system
    r.saw([healthy], 't3');
    expect(r.errors(mounted)).toEqual([]);
  });
});
