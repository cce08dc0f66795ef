import { listSizedLoopBindings, type SysfsReader } from './losetup';

describe('listSizedLoopBindings: reads without a look first', () => {
  const files: Record<string, string> = {
    '/p': '   7        3       8192 loop3\n   7        5       8192 loop5\n',
    '/s/loop3/loop/backing_file': '/pool/a.img\n',
    '/s/loop4/loop/backing_file': '/pool/tiny.img\n',
  };
  const reader = (): SysfsReader & { looked: string[]; read: string[] } => {
    const looked: string[] = [];
    const read: string[] = [];
    return {
      looked,
      read,
      readdir: () => ['loop3', 'loop4', 'loop5'],
      readFile: (f) => {
        looked.push(f);
        return files[f] ?? null;
      },
      readExpected: (f) => {
        read.push(f);
        return files[f] ?? null;
      },
    };
  };

  it('reads /proc/partitions and each device it lists directly; one unbound since is left out', async () => {
    const r = reader();
    expect(await listSizedLoopBindings('/s', r, '/p')).toEqual([
      { device: '/dev/loop3', backingFile: '/pool/a.img', deleted: false },
    ]);
    expect(r.read).toEqual(['/p', '/s/loop3/loop/backing_file', '/s/loop5/loop/backing_file']);
    expect(r.looked).toEqual([]);
  });

  it('without /proc/partitions looks at every device (listLoopBindings)', async () => {
    const r = reader();
    expect((await listSizedLoopBindings('/s', r, '/none'))?.map((b) => b.device)).toEqual(['/dev/loop3', '/dev/loop4']);
    expect(r.looked).toEqual([
      '/s/loop3/loop/backing_file',
      '/s/loop4/loop/backing_file',
      '/s/loop5/loop/backing_file',
    ]);
  });

  it('a reader without readExpected is asked through readFile', async () => {
    const looked: string[] = [];
    const plain: SysfsReader = {
      readdir: () => [],
      readFile: (f) => {
        looked.push(f);
        return files[f] ?? null;
      },
    };
    expect((await listSizedLoopBindings('/s', plain, '/p'))?.map((b) => b.device)).toEqual(['/dev/loop3']);
    expect(looked).toEqual(['/p', '/s/loop3/loop/backing_file', '/s/loop5/loop/backing_file']);
  });
});
