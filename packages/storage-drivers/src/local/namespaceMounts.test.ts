/**
 * Review U2 (session 16), finding 1: a move's release (no mount of the dataset in any mount
 * namespace) was seen while a container still wrote to the volume, and the final round went out.
 * The scan of every namespace marked a namespace read once its link was read, before its mounts
 * were: a process of the container's namespace that ended in between (a `sleep` of the writer's
 * loop, listed before the container's shell after the pids wrapped) left that namespace unread for
 * the whole scan, so the container's mount was not seen.
 */
import {
  enterFailure,
  NamespaceScanError,
  namespaceBlindness,
  readNamespaceMounts,
  SCAN_PASSES,
  type ProcReader,
  type ScanStats,
} from './processes';

const CONTAINER_NS = 'mnt:[4026532900]';
const HOST_NS = 'mnt:[4026531841]';
// A process's table lists a mount at "/" unless it is chrooted (see readNamespaceMounts).
const HOST_MOUNTINFO =
  '21 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n22 21 0:50 / /pool rw,relatime shared:2 - btrfs /dev/loop9 rw\n';
const CONTAINER_MOUNTINFO =
  '800 700 0:90 / / rw,relatime - overlay overlay rw\n900 800 0:50 /flocker/datasets/0b0e6d4c-6c52-4a43-9d8a-4e3f1c1d2a10 /data rw,relatime - btrfs /dev/loop9 rw\n';

/** The mount points listed, but "/" (every namespace's root). */
const points = (mounts: readonly { mountPoint: string }[]): string[] =>
  mounts.map((m) => m.mountPoint).filter((p) => p !== '/');

function gone(): Error {
  return Object.assign(new Error('gone'), { code: 'ENOENT' });
}

function coded(code: string): Error {
  return Object.assign(new Error(code), { code });
}

function proc(over: Partial<Omit<ProcReader, 'pids'>> & { pids: string[] }): ProcReader {
  return {
    pids: () => Promise.resolve(over.pids),
    tasks: over.tasks ?? (() => Promise.reject(gone())),
    mountNamespace: over.mountNamespace ?? (() => Promise.resolve(HOST_NS)),
    mountInfo: over.mountInfo ?? (() => Promise.resolve(HOST_MOUNTINFO)),
    root: over.root ?? (() => Promise.resolve('/')),
    enterMountInfo: over.enterMountInfo ?? (() => Promise.reject(new Error('not entered'))),
    blindness: over.blindness ?? (() => Promise.resolve(null)),
  };
}

describe('readNamespaceMounts (every mount namespace of the host)', () => {
  it("a process of a namespace that ended between its two reads does not hide that namespace's other processes", async () => {
    // pid 7: the container's `sleep`, ended after its link was read; pid 30000: the container's shell.
    const mounts = await readNamespaceMounts(
      proc({
        pids: ['1', '7', '30000'],
        mountNamespace: (pid) => Promise.resolve(pid === '1' ? HOST_NS : CONTAINER_NS),
        mountInfo: (pid) => {
          if (pid === '7') return Promise.reject(gone());
          return Promise.resolve(pid === '1' ? HOST_MOUNTINFO : CONTAINER_MOUNTINFO);
        },
      }),
    );
    expect(points(mounts).sort()).toEqual(['/data', '/pool']);
  });

  it('a namespace is read once (the first process whose mounts could be read)', async () => {
    const read: string[] = [];
    await readNamespaceMounts(
      proc({
        pids: ['1', '2', '3'],
        mountInfo: (pid) => {
          read.push(pid);
          return Promise.resolve(HOST_MOUNTINFO);
        },
      }),
    );
    expect(read).toEqual(['1']);
  });

  it('a process that could not be read for another reason than having ended fails the scan (never "not in use" by a guess)', async () => {
    await expect(
      readNamespaceMounts(
        proc({
          pids: ['1', '2'],
          mountNamespace: (pid) => Promise.resolve(pid === '1' ? HOST_NS : CONTAINER_NS),
          mountInfo: (pid) =>
            pid === '1'
              ? Promise.resolve(HOST_MOUNTINFO)
              : Promise.reject(Object.assign(new Error('EMFILE: too many open files'), { code: 'EMFILE' })),
        }),
      ),
    ).rejects.toThrow(/EMFILE/);
  });

  it('processes that ended (ENOENT, ESRCH, EINVAL for a zombie) are skipped; one whose namespace link is not ours to read (EACCES) has its mounts read all the same', async () => {
    const stats: ScanStats[] = [];
    const mounts = await readNamespaceMounts(
      proc({
        pids: ['1', '2', '3', '4', '5'],
        mountNamespace: (pid) =>
          pid === '2'
            ? Promise.reject(coded('ESRCH'))
            : pid === '5'
              ? Promise.reject(coded('EACCES'))
              : Promise.resolve(HOST_NS),
        mountInfo: (pid) =>
          pid === '1'
            ? Promise.reject(coded('EINVAL'))
            : Promise.resolve(pid === '5' ? CONTAINER_MOUNTINFO : HOST_MOUNTINFO),
      }),
      (s) => stats.push(s),
    );
    expect(points(mounts).sort()).toEqual(['/data', '/pool']);
    expect(stats).toEqual([{ processes: 5, namespaces: 1, linkUnreadable: 1, gone: 2, passes: 2, entered: 0 }]);
  });

  // RV 5 (session 16 review), blind spot 1: /proc lists thread-group ids only, and those of a leader that
  // called pthread_exit while its other threads run fail (ns/mnt ENOENT, mountinfo EINVAL).
  it("a zombie thread-group leader's namespace is read through its live threads", async () => {
    const mounts = await readNamespaceMounts(
      proc({
        pids: ['1', '50'],
        tasks: (pid) => Promise.resolve(pid === '50' ? ['50', '51'] : [pid]),
        mountNamespace: (pid, tid) => {
          if (pid === '1') return Promise.resolve(HOST_NS);
          return tid === '51' ? Promise.resolve(CONTAINER_NS) : Promise.reject(gone());
        },
        mountInfo: (pid, tid) => {
          if (pid === '1') return Promise.resolve(HOST_MOUNTINFO);
          return tid === '51' ? Promise.resolve(CONTAINER_MOUNTINFO) : Promise.reject(coded('EINVAL'));
        },
      }),
    );
    expect(points(mounts).sort()).toEqual(['/data', '/pool']);
  });

  it('a process that is gone with all its threads is skipped (its task list is gone too, or holds only the zombie)', async () => {
    const mounts = await readNamespaceMounts(
      proc({
        pids: ['1', '60', '61'],
        tasks: (pid) => (pid === '60' ? Promise.resolve(['60']) : Promise.reject(gone())),
        mountNamespace: (pid) => (pid === '1' ? Promise.resolve(HOST_NS) : Promise.reject(gone())),
      }),
    );
    expect(points(mounts)).toEqual(['/pool']);
  });

  // RV 5, blind spot 3: the pid was reused between the link and the mounts; the mounts read are the new
  // process's, and the old process's namespace must not be taken as read.
  it("a pid reused between its namespace link and its mounts does not mark the old process's namespace read", async () => {
    let links = 0;
    const mounts = await readNamespaceMounts(
      proc({
        pids: ['1', '7', '30000'],
        mountNamespace: (pid) => {
          if (pid === '1') return Promise.resolve(HOST_NS);
          if (pid === '7') return Promise.resolve(links++ === 0 ? CONTAINER_NS : HOST_NS);
          return Promise.resolve(CONTAINER_NS);
        },
        mountInfo: (pid) => Promise.resolve(pid === '30000' ? CONTAINER_MOUNTINFO : HOST_MOUNTINFO),
      }),
    );
    expect(points(mounts).sort()).toEqual(['/data', '/pool']);
  });

  it('a namespace link that keeps changing under the reads fails the scan', async () => {
    let n = 0;
    await expect(
      readNamespaceMounts(
        proc({
          pids: ['1', '7'],
          mountNamespace: (pid) => Promise.resolve(pid === '1' ? HOST_NS : `mnt:[${4026533000 + n++}]`),
        }),
      ),
    ).rejects.toMatchObject({ code: 'NAMESPACE_SCAN_INCOMPLETE' });
  });

  it('a process whose mounts are not ours to read either (EACCES on both) fails the scan', async () => {
    await expect(
      readNamespaceMounts(
        proc({
          pids: ['1', '9'],
          mountNamespace: (pid) => (pid === '1' ? Promise.resolve(HOST_NS) : Promise.reject(coded('EACCES'))),
          mountInfo: (pid) => (pid === '1' ? Promise.resolve(HOST_MOUNTINFO) : Promise.reject(coded('EPERM'))),
        }),
      ),
    ).rejects.toMatchObject({ code: 'NAMESPACE_SCAN_INCOMPLETE' });
  });

  // RV3 (session 17), finding 1: a process's mountinfo lists only the mounts reachable from its root.
  describe('chrooted processes (their table is partial)', () => {
    const JAIL_MOUNTINFO = ''; // chrooted into a directory of the mount: nothing reachable is a mount's root
    it("a chrooted process does not stand for its namespace: the namespace's next process (not chrooted) is read", async () => {
      const read: string[] = [];
      const mounts = await readNamespaceMounts(
        proc({
          pids: ['1', '40', '41'],
          mountNamespace: (pid) => Promise.resolve(pid === '1' ? HOST_NS : CONTAINER_NS),
          root: (pid) => Promise.resolve(pid === '40' ? '/run/sshd' : '/'),
          mountInfo: (pid) => {
            read.push(pid);
            return Promise.resolve(pid === '1' ? HOST_MOUNTINFO : pid === '40' ? JAIL_MOUNTINFO : CONTAINER_MOUNTINFO);
          },
        }),
      );
      expect(read).toEqual(['1', '40', '41']);
      expect(points(mounts).sort()).toEqual(['/data', '/pool']);
    });

    it('a namespace whose every process is chrooted is entered and read whole', async () => {
      const stats: ScanStats[] = [];
      const mounts = await readNamespaceMounts(
        proc({
          pids: ['1', '40', '41'],
          mountNamespace: (pid) => Promise.resolve(pid === '1' ? HOST_NS : CONTAINER_NS),
          root: (pid) => Promise.resolve(pid === '1' ? '/' : '/data/jail'),
          mountInfo: (pid) => Promise.resolve(pid === '1' ? HOST_MOUNTINFO : JAIL_MOUNTINFO),
          enterMountInfo: (pid) =>
            pid === '40'
              ? Promise.resolve({ namespace: CONTAINER_NS, text: CONTAINER_MOUNTINFO })
              : Promise.reject(new Error('only once')),
        }),
        (st) => stats.push(st),
      );
      expect(points(mounts).sort()).toEqual(['/data', '/pool']);
      expect(stats).toEqual([{ processes: 3, namespaces: 2, linkUnreadable: 0, gone: 0, passes: 1, entered: 1 }]);
    });

    it('a root of "/" whose table lists no mount at "/" (a detached root) does not stand for its namespace', async () => {
      const entered: string[] = [];
      await readNamespaceMounts(
        proc({
          pids: ['1', '40'],
          mountNamespace: (pid) => Promise.resolve(pid === '1' ? HOST_NS : CONTAINER_NS),
          mountInfo: (pid) => Promise.resolve(pid === '1' ? HOST_MOUNTINFO : JAIL_MOUNTINFO),
          enterMountInfo: (pid) => {
            entered.push(pid);
            return Promise.resolve({ namespace: CONTAINER_NS, text: CONTAINER_MOUNTINFO });
          },
        }),
      );
      expect(entered).toEqual(['40']);
    });

    it('a chrooted-only namespace that cannot be entered fails the scan, naming the process and its root', async () => {
      await expect(
        readNamespaceMounts(
          proc({
            pids: ['1', '40'],
            mountNamespace: (pid) => Promise.resolve(pid === '1' ? HOST_NS : CONTAINER_NS),
            root: (pid) => Promise.resolve(pid === '1' ? '/' : '/data/jail'),
            mountInfo: (pid) => Promise.resolve(pid === '1' ? HOST_MOUNTINFO : JAIL_MOUNTINFO),
            enterMountInfo: () => Promise.reject(new NamespaceScanError('perl: not found')),
          }),
        ),
      ).rejects.toMatchObject({
        code: 'NAMESPACE_SCAN_INCOMPLETE',
        message: expect.stringMatching(/process 40, root \/data\/jail.*perl: not found/),
      });
    });

    it('perl missing: the error says to install it, with the same code (review FR finding 15)', () => {
      // What execFile rejects with when there is no perl on the PATH (before, the message ended in it).
      const spawnFailed = Object.assign(new Error('spawn perl ENOENT'), {
        code: 'ENOENT',
        errno: -2,
        syscall: 'spawn perl',
      });
      expect(enterFailure('40', spawnFailed)).toMatchObject({
        code: 'NAMESPACE_SCAN_INCOMPLETE',
        message: expect.stringMatching(
          /^perl is not installed: .*process 40.*; install it \(Debian\/Ubuntu: perl-base\)$/,
        ),
      });
      // perl ran and failed (its exit code a number): the message says so, as before.
      expect(enterFailure('40', Object.assign(new Error('Command failed'), { code: 12 }))).toMatchObject({
        code: 'NAMESPACE_SCAN_INCOMPLETE',
        message: 'cannot read the mount namespace of process 40 from inside it (perl): Command failed',
      });
      // The process ended before its namespace was opened: ENOENT for the scan's "gone" (not a scan error).
      const gone = enterFailure('40', Object.assign(new Error('Command failed'), { code: 3 }));
      expect(gone).not.toBeInstanceOf(NamespaceScanError);
      expect(gone).toMatchObject({ code: 'ENOENT' });
    });
  });

  // RV3, finding 2: /proc listed once missed a namespace its only listed process left to a child.
  describe('processes that ended before their namespace was read: /proc is listed again', () => {
    it('the next listing reads only the pids new in it, and finds the namespace in the child', async () => {
      let listings = 0;
      const linked: string[] = [];
      const stats: ScanStats[] = [];
      const mounts = await readNamespaceMounts(
        {
          ...proc({ pids: [] }),
          pids: () => Promise.resolve(listings++ === 0 ? ['1', '70'] : ['1', '70', '71']),
          mountNamespace: (pid) => {
            linked.push(pid);
            if (pid === '70') return Promise.reject(gone());
            return Promise.resolve(pid === '1' ? HOST_NS : CONTAINER_NS);
          },
          mountInfo: (pid) => Promise.resolve(pid === '1' ? HOST_MOUNTINFO : CONTAINER_MOUNTINFO),
        },
        (st) => stats.push(st),
      );
      expect(points(mounts).sort()).toEqual(['/data', '/pool']);
      expect(linked).toEqual(['1', '1', '70', '71', '71']);
      expect(stats).toEqual([{ processes: 3, namespaces: 2, linkUnreadable: 0, gone: 1, passes: 2, entered: 0 }]);
    });

    it(`processes that keep ending unread in ${SCAN_PASSES} listings fail the scan`, async () => {
      let next = 100;
      await expect(
        readNamespaceMounts({
          ...proc({ pids: [] }),
          pids: () => Promise.resolve(['1', String(next++)]),
          mountNamespace: (pid) => (pid === '1' ? Promise.resolve(HOST_NS) : Promise.reject(gone())),
        }),
      ).rejects.toMatchObject({ code: 'NAMESPACE_SCAN_INCOMPLETE', message: expect.stringMatching(/kept ending/) });
      expect(next).toBe(100 + SCAN_PASSES);
    });

    it('a process gone after its namespace was read elsewhere needs no other listing', async () => {
      const stats: ScanStats[] = [];
      await readNamespaceMounts(
        proc({
          pids: ['1', '2'],
          mountInfo: (pid) => (pid === '1' ? Promise.reject(gone()) : Promise.resolve(HOST_MOUNTINFO)),
        }),
        (st) => stats.push(st),
      );
      expect(stats[0]?.passes).toBe(1);
    });
  });

  // RV 5, blind spot 2: outside the initial user or PID namespace, other containers are unreadable or not
  // listed at all: "not in use" would be a guess.
  it('an agent that cannot see every process (not in the initial user or PID namespace) fails the scan', async () => {
    await expect(
      readNamespaceMounts(proc({ pids: ['1'], blindness: () => Promise.resolve('in a user namespace') })),
    ).rejects.toMatchObject({ code: 'NAMESPACE_SCAN_INCOMPLETE', message: expect.stringMatching(/user namespace/) });
  });
});

describe('namespaceBlindness (is this process in the initial user and PID namespaces)', () => {
  const STATUS = 'Name:\tnode\nTgid:\t17682\nNSpid:\t17682\nNSsid:\t1\n';
  it('the initial namespaces: null', () => {
    expect(namespaceBlindness('         0          0 4294967295\n', STATUS)).toBeNull();
  });
  it('a user namespace (a mapped range, or a full map of another range) is named', () => {
    expect(namespaceBlindness('         0     100000      65536\n', STATUS)).toMatch(/user namespace/);
    expect(namespaceBlindness('         0          0 4294967294\n', STATUS)).toMatch(/user namespace/);
    expect(namespaceBlindness('', STATUS)).toMatch(/user namespace/);
  });
  it('a PID namespace of its own (NSpid with more than one id), or no NSpid line, is named', () => {
    expect(namespaceBlindness('0 0 4294967295\n', 'NSpid:\t17682\t1\n')).toMatch(/PID namespace/);
    expect(namespaceBlindness('0 0 4294967295\n', 'Name:\tnode\n')).toMatch(/PID namespace/);
  });
});
