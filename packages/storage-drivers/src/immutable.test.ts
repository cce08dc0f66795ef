import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { execFileExec, type ExecFn } from './exec';
import { ImmutableFlagError, isImmutable, setImmutable } from './immutable';
import { LoopIoctls } from './losetup';
import { destroyTempRoot, makeTempRoot } from './testing/testSupport';

const roots: string[] = [];
afterAll(async () => {
  for (const root of roots) await destroyTempRoot(root);
});

describe.each([
  ['ioctl helper', () => ({ exec: execFileExec, ioctls: new LoopIoctls() })],
  ['chattr/lsattr', () => ({ exec: execFileExec })],
])('immutable flag (%s)', (_name, options) => {
  it('sets and clears the flag; an immutable file cannot be written, renamed or unlinked', async () => {
    const root = await makeTempRoot('flocker-immutable-test-');
    roots.push(root);
    const file = path.join(root, 'x.img');
    await fs.writeFile(file, 'data');
    const o = options();
    expect(await isImmutable(file, o)).toBe(false);
    await setImmutable(file, true, o);
    await setImmutable(file, true, o); // idempotent
    expect(await isImmutable(file, o)).toBe(true);
    expect((await execFileExec('lsattr', ['-d', file])).stdout).toMatch(/^\S*i\S* /);
    await expect(fs.writeFile(file, 'more')).rejects.toMatchObject({ code: 'EPERM' });
    await expect(fs.rename(file, `${file}.2`)).rejects.toMatchObject({ code: 'EPERM' });
    await expect(fs.unlink(file)).rejects.toMatchObject({ code: 'EPERM' });
    await setImmutable(file, false, o);
    expect(await isImmutable(file, o)).toBe(false);
    await fs.rm(file);
  });

  it('names the errno when the flag cannot be set', async () => {
    const root = await makeTempRoot('flocker-immutable-test-');
    roots.push(root);
    const failure = await setImmutable(path.join(root, 'missing'), true, options()).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(ImmutableFlagError);
    expect(failure).toMatchObject({ code: 'BACKEND_ERROR', errno: 'ENOENT' });
  });
});

it('chattr failures become ImmutableFlagError with the errno from its message', async () => {
  const exec: ExecFn = async () => ({
    exitCode: 1,
    stdout: '',
    stderr: 'chattr: Operation not supported while setting flags on /p/x\n',
  });
  const failure = await setImmutable('/p/x', true, { exec }).catch((e: unknown) => e);
  expect(failure).toMatchObject({ code: 'BACKEND_ERROR', errno: 'EOPNOTSUPP' });
  expect(String(failure)).toMatch(/chattr \+i \/p\/x/);
});
