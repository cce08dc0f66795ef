/**
 * A loopback driver's helper processes (flocker-syshelper: its pool lock's and its loop ioctls') are bounded per
 * driver, not per operation, and close() ends them. Before close() they lived as long as the process: a jest worker
 * running the Loopback tests held ~240 of them (two per driver made).
 */
import { promises as fs } from 'node:fs';
import { LoopbackDriver } from './LoopbackDriver';
import { destroyTempRoot, makeTempRoot } from './testing/testSupport';

jest.setTimeout(60_000);

const MiB = 1024 * 1024;
let root: string;

beforeEach(async () => {
  root = await makeTempRoot('flocker-loopback-close-test-');
});

afterEach(async () => {
  await destroyTempRoot(root);
});

/** This process's live flocker-syshelper children (from /proc; a zombie or an ended one is not counted). */
async function liveHelpers(): Promise<Set<number>> {
  const live = new Set<number>();
  for (const entry of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await fs.readFile(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid …: comm may hold spaces, so split after its closing parenthesis.
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(ppid) !== process.pid || state === 'Z') continue;
      const cmdline = await fs.readFile(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.includes('flocker-syshelper.pl')) live.add(Number(entry));
    } catch {
      // ended while we looked
    }
  }
  return live;
}

/** Helpers started since `before` (other test files' drivers in this worker may have left theirs). */
async function newHelpers(before: Set<number>): Promise<number[]> {
  return [...(await liveHelpers())].filter((pid) => !before.has(pid));
}

async function cycle(driver: LoopbackDriver, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const v = await driver.createVolume(`ds-${i}`, 8 * MiB);
    await driver.attachVolume(v.blockdeviceId, 'instance-a');
    await driver.detachVolume(v.blockdeviceId);
    await driver.destroyVolume(v.blockdeviceId);
  }
}

describe('LoopbackDriver helper processes', () => {
  it('two per driver whatever the number of operations, none after close()', async () => {
    const before = await liveHelpers();
    const driver = new LoopbackDriver({ rootPath: root, instanceId: 'instance-a' });
    await cycle(driver, 10);
    // The pool lock's (--lock) and the loop ioctls': 40 operations later, still those two.
    expect(await newHelpers(before)).toHaveLength(2);

    await driver.close();
    expect(await newHelpers(before)).toEqual([]);

    // Usable again: the helpers start again, and close() ends them again.
    await cycle(driver, 1);
    expect(await newHelpers(before)).toHaveLength(2);
    await driver.close();
    expect(await newHelpers(before)).toEqual([]);
  });

  it('close() of a driver that never ran a helper, and a second close(), do nothing', async () => {
    const before = await liveHelpers();
    const driver = new LoopbackDriver({ rootPath: root, instanceId: 'instance-a' });
    await driver.close();
    await cycle(driver, 1);
    await Promise.all([driver.close(), driver.close()]);
    expect(await newHelpers(before)).toEqual([]);
  });
});
