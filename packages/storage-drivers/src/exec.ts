import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { Socket } from 'node:net';
import { StorageError, type StorageErrorCode } from './BlockDeviceApi';

/** The outcome of one command; a non-zero exit is a result, not an exception. */
export interface ExecResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a program with an argv (never through a shell). Injected everywhere a
 * command is run so unit tests can assert the exact argv and fake the output.
 */
export type ExecFn = (file: string, args: readonly string[]) => Promise<ExecResult>;

const MAX_OUTPUT = 16 * 1024 * 1024;

/** The real thing: child_process.execFile, rejecting only when the program cannot be run at all. */
export const execFileExec: ExecFn = (file, args) =>
  new Promise((resolve, reject) => {
    execFile(file, [...args], { maxBuffer: MAX_OUTPUT, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error === null) {
        resolve({ exitCode: 0, stdout, stderr });
        return;
      }
      const code: unknown = (error as NodeJS.ErrnoException).code;
      if (typeof code === 'number') {
        resolve({ exitCode: code, stdout, stderr });
        return;
      }
      reject(
        new StorageError(
          'BACKEND_ERROR',
          `could not run ${file}: ${error.message}${code === 'ENOENT' ? ' (is it installed and on PATH?)' : ''}`,
        ),
      );
    });
  });

/** Quote one argv element for messages, so a logged command reads like a shell line. */
function quote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function formatCommand(file: string, args: readonly string[]): string {
  return [file, ...args].map(quote).join(' ');
}

/** Runs a command that must succeed; a failure becomes a StorageError carrying its stderr. */
export async function runChecked(
  exec: ExecFn,
  file: string,
  args: readonly string[],
  what: string,
  code: StorageErrorCode = 'BACKEND_ERROR',
  blockdeviceId?: string,
): Promise<string> {
  const result = await exec(file, args);
  if (result.exitCode !== 0) {
    const detail = result.stderr.trim() || result.stdout.trim() || 'no output';
    throw new StorageError(
      code,
      `${what} failed: \`${formatCommand(file, args)}\` exited with ${result.exitCode}: ${detail}`,
      blockdeviceId,
    );
  }
  return result.stdout;
}

/** The helper program cannot be run at all (not installed): callers fall back to spawning per call. */
export class HelperUnavailable extends Error {}

/**
 * A long-lived helper process speaking one line per request and one line per
 * answer, answered in order. Spawned on first use, again after it dies; it
 * holds the event loop only while a request is outstanding. A program that
 * spawns once instead of once per call saves a process start (several ms,
 * far more on a loaded host) on every request.
 */
export class LineHelper {
  private running: Promise<RunningHelper> | undefined;

  constructor(
    private readonly what: string,
    private readonly argv: readonly [string, ...string[]],
  ) {}

  /** `onSent`: called once the line is written (not when it fails before), while the helper works on it. */
  async request(line: string, onSent?: () => void): Promise<string> {
    let helper = await (this.running ?? this.start());
    // One being closed (its input ended or about to be: review s27 F11) answers nothing more: a line written to it
    // would be a write after end, its reply never coming. Another is started (close() let go of the old one).
    while (helper.closing) helper = await (this.running ?? this.start());
    return new Promise<string>((resolve, reject) => {
      helper.replies.push((answer) => (answer instanceof Error ? reject(answer) : resolve(answer)));
      setRef(helper, true);
      helper.child.stdin.write(`${line}\n`);
      try {
        onSent?.();
      } catch {
        // The caller's work beside the request; its failure must not orphan the answer (a lock taken, say).
      }
    });
  }

  /**
   * Ends the helper: end of input, so it answers the lines already sent and exits (a lock helper's flock goes with
   * it). Resolves once it has exited. A later request starts another. Without it a helper lives as long as this
   * process: one per lock or ioctl helper of each driver ever made (a test worker's drivers: 2 each).
   */
  async close(): Promise<void> {
    const running = this.running;
    if (running === undefined) return;
    if (this.running === running) this.running = undefined;
    let helper: RunningHelper;
    try {
      helper = await running;
    } catch {
      return; // never started
    }
    const { child } = helper;
    // From here on no request writes to it (see request).
    helper.closing = true;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((done) => child.once('close', () => done()));
    setRef(helper, true); // an idle helper is unref'd: its exit must still be awaited
    child.stdin.end();
    await exited;
  }

  private start(): Promise<RunningHelper> {
    const [file, ...args] = this.argv;
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const helper: RunningHelper = { child, replies: [], stderr: '', closing: false };
    const forget = (): void => {
      if (this.running === started) this.running = undefined;
    };
    const started = new Promise<RunningHelper>((resolve, reject) => {
      child.once('spawn', () => resolve(helper));
      child.once('error', (e: NodeJS.ErrnoException) => {
        forget();
        if (e.code === 'ENOENT') reject(new HelperUnavailable(`${file} is not installed`));
        else reject(new StorageError('BACKEND_ERROR', `cannot run the ${this.what}: ${e.message}`));
      });
    });
    this.running = started;
    let buffered = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => (helper.stderr += d));
    child.stdin.on('error', () => undefined); // EPIPE after the helper died: 'close' reports it
    child.stdout.on('data', (d: string) => {
      buffered += d;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const answer = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        helper.replies.shift()?.(answer);
      }
      if (helper.replies.length === 0) setRef(helper, false);
    });
    child.once('close', (code) => {
      forget();
      const failure = new StorageError(
        'BACKEND_ERROR',
        `the ${this.what} exited with ${code}: ${helper.stderr.trim() || 'no output'}`,
      );
      for (const reply of helper.replies.splice(0)) reply(failure);
    });
    return started;
  }
}

interface RunningHelper {
  readonly child: ChildProcessWithoutNullStreams;
  /** One resolver per request sent, answered in order. */
  readonly replies: Array<(answer: string | Error) => void>;
  stderr: string;
  /** close() ends (or ended) its input: it takes no more requests. */
  closing: boolean;
}

/** An idle helper must not keep the process alive; a busy one must. */
function setRef(helper: RunningHelper, ref: boolean): void {
  if (ref) helper.child.ref();
  else helper.child.unref();
  // The pipes are sockets; they hold the event loop too.
  for (const pipe of [helper.child.stdin, helper.child.stdout, helper.child.stderr]) {
    if (!(pipe instanceof Socket)) continue;
    if (ref) pipe.ref();
    else pipe.unref();
  }
}
