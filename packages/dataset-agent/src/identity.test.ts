import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { FakeFullDisk } from '@flocker/api/testing';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ensureNodeIdentity,
  readEra,
  readLastNodeTimeout,
  readNodeIdentity,
  writeLastNodeTimeout,
  writeNodeIdentity,
} from './identity';

// Every directory a test makes goes at the end: CI runs leave nothing in /tmp.
const made: string[] = [];
const tmp = (): string => {
  const dir = mkdtempSync(join(tmpdir(), 'agent-identity-'));
  made.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

describe('node identity', () => {
  it('is created once and then kept', () => {
    const dir = join(tmp(), 'state');
    expect(readNodeIdentity(dir)).toBeNull();
    const first = ensureNodeIdentity(dir);
    expect(first.uuid).toMatch(/^[0-9a-f-]{36}$/);
    expect(ensureNodeIdentity(dir, () => 'not-used')).toEqual(first);
    expect(readNodeIdentity(dir)).toEqual(first);
    expect(JSON.parse(readFileSync(join(dir, 'node.json'), 'utf8'))).toEqual({ uuid: first.uuid });
  });

  it('refuses a damaged identity file rather than inventing a new node', () => {
    const dir = tmp();
    writeFileSync(join(dir, 'node.json'), '{"uuid": "nope"}');
    expect(() => ensureNodeIdentity(dir)).toThrow(expect.objectContaining({ code: 'IDENTITY_INVALID' }));
  });

  it('reads the era from the boot id or from an era file', () => {
    expect(readEra()).toMatch(/^[0-9a-f-]{36}$/);
    const file = join(tmp(), 'era');
    writeFileSync(file, 'reboot-2\n');
    expect(readEra(file)).toBe('reboot-2');
  });
});

describe('last node timeout', () => {
  it('is kept in the state directory across restarts; unreadable means unknown', () => {
    const dir = mkdtempSync(join(tmpdir(), 'timing-'));
    expect(readLastNodeTimeout(dir)).toBeUndefined();
    writeLastNodeTimeout(dir, 3);
    expect(readLastNodeTimeout(dir)).toBe(3);
    writeFileSync(join(dir, 'timing.json'), '{"node_timeout_seconds": -1}');
    expect(readLastNodeTimeout(dir)).toBeUndefined();
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('state files on a full disk', () => {
  const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
  const B = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';

  it('a failed write (short, then ENOSPC) throws, keeps the old file and leaves no temp file', () => {
    const dir = tmp();
    writeNodeIdentity(dir, { uuid: A });
    writeLastNodeTimeout(dir, 30);
    const before = readdirSync(dir).sort();
    const disk = new FakeFullDisk(10);
    expect(() => writeNodeIdentity(dir, { uuid: B }, disk.syncOps)).toThrow(/ENOSPC/);
    expect(readNodeIdentity(dir)).toEqual({ uuid: A });
    disk.free = 5;
    expect(() => writeLastNodeTimeout(dir, 12, disk.syncOps)).toThrow(/ENOSPC/);
    expect(readLastNodeTimeout(dir)).toBe(30);
    expect(readdirSync(dir).sort()).toEqual(before);
    disk.free = Infinity;
    writeNodeIdentity(dir, { uuid: B }, disk.syncOps);
    writeLastNodeTimeout(dir, 12, disk.syncOps);
    expect(readNodeIdentity(dir)).toEqual({ uuid: B });
    expect(readLastNodeTimeout(dir)).toBe(12);
    expect(readdirSync(dir).sort()).toEqual(before);
    rmSync(dir, { recursive: true, force: true });
  });
});
