/**
 * RV 5 (session 16 review), blind spot 1, with a real process: a thread-group leader that called
 * pthread_exit while another thread runs on, alone in a mount namespace of its own (unshare -m) that
 * holds a tmpfs. /proc lists only its thread-group id, whose ns/mnt and mountinfo fail (the leader is a
 * zombie): the scan of every namespace must read that namespace through the live thread all the same.
 * Needs root (unshare -m, mount) and a C compiler.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { readAllNamespaceMounts } from './processes';

jest.setTimeout(60_000);

// The leader exits at once; its thread says "ready" once the leader is a zombie, then waits for stdin to end.
const PROGRAM = String.raw`
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static pid_t leader;
static void *run(void *arg) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)leader);
  for (;;) {
    FILE *f = fopen(path, "r");
    if (f == NULL) break;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (p != NULL && p[1] == ' ' && p[2] == 'Z') break;
    usleep(1000);
  }
  if (write(1, "ready\n", 6) != 6) exit(1);
  char c;
  while (read(0, &c, 1) > 0) {}
  exit(0);
}
int main(void) {
  leader = getpid();
  pthread_t t;
  if (pthread_create(&t, NULL, run, NULL) != 0) return 1;
  pthread_exit(NULL);
}
`;

const root = process.getuid?.() === 0;
const cc = ['/usr/bin/cc', '/usr/bin/gcc'].find((p) => existsSync(p));

describe('readAllNamespaceMounts: a zombie thread-group leader alone in its mount namespace (real process)', () => {
  if (!root || cc === undefined) {
    it('needs root and a C compiler (skipped)', () => undefined);
    return;
  }
  let dir = '';
  let child: ChildProcess | null = null;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flocker-zombie-leader-'));
  });
  afterAll(async () => {
    child?.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  it("the namespace's mounts are read through the live thread", async () => {
    await writeFile(join(dir, 'leader.c'), PROGRAM);
    const program = join(dir, 'leader');
    await promisify(execFile)(cc, ['-O1', '-pthread', '-o', program, join(dir, 'leader.c')]);
    const at = join(dir, 'held');
    await mkdir(at);
    // exec: the program is the namespace's only process.
    const proc = spawn(
      'unshare',
      [
        '-m',
        '--propagation',
        'private',
        'sh',
        '-c',
        'mount -t tmpfs flocker-zombie "$1" && exec "$2"',
        'sh',
        at,
        program,
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    child = proc;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    await new Promise<void>((resolve, reject) => {
      let out = '';
      proc.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('ready')) resolve();
      });
      proc.once('exit', (code) => reject(new Error(`the program exited (${code}) before it was ready`)));
    });
    const pid = String(proc.pid);
    // The setting is what it should be: the leader's own entries fail, a live thread's read.
    await expect(readlink(`/proc/${pid}/ns/mnt`)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(readFile(`/proc/${pid}/mountinfo`, 'utf8')).rejects.toMatchObject({ code: 'EINVAL' });
    expect((await readFile('/proc/self/mountinfo', 'utf8')).includes(at)).toBe(false);

    const mounts = await readAllNamespaceMounts();
    expect(mounts.filter((m) => m.mountPoint === at)).toEqual([
      expect.objectContaining({ fstype: 'tmpfs', source: 'flocker-zombie' }),
    ]);

    proc.stdin.end();
    await exited;
    child = null;
  });
});
