/**
 * Test fixture: a process whose leader thread has exited (a zombie) while another thread lives on — what a
 * killed agent looks like while its last thread is still finishing a blocking call. Its own /proc links (ns/mnt)
 * read as gone; its thread still holds its namespaces. Runs `setup` (sh) first, in a private mount namespace.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { sleep } from './run';

const SCRIPT = [
  'import ctypes, sys, threading, time',
  'threading.Thread(target=time.sleep, args=(float(sys.argv[1]),)).start()',
  'time.sleep(0.1)',
  'sys.stdout.write("ready\\n"); sys.stdout.flush()',
  'ctypes.CDLL(None).syscall(60, 0)  # SYS_exit (x86-64): the leader thread alone',
].join('\n');

export interface ZombieLeader {
  readonly pid: number;
  /** /proc path of the live thread's mount namespace. */
  readonly threadMountNs: string;
  readonly exited: Promise<void>;
  kill(): Promise<void>;
}

export async function startZombieLeader(setup: string, liveSeconds = 600): Promise<ZombieLeader> {
  const child = spawn(
    'unshare',
    [
      '--mount',
      '--propagation',
      'private',
      'sh',
      '-ec',
      `${setup}\nexec /usr/bin/python3 -c "$0" "$1"`,
      SCRIPT,
      String(liveSeconds),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    child.once('exit', (code) => reject(new Error(`the zombie-leader fixture exited with ${code}`)));
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error('no pid');
  for (let i = 0; i < 100 && !fs.readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z '); i++) await sleep(20);
  const tid = fs.readdirSync(`/proc/${pid}/task`).find((t) => t !== String(pid));
  if (tid === undefined) throw new Error('no live thread');
  return {
    pid,
    threadMountNs: `/proc/${pid}/task/${tid}/ns/mnt`,
    exited,
    kill: async () => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
      await exited;
    },
  };
}
