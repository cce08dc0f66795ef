import { type ChildProcess, spawn } from 'node:child_process';

/**
 * A server in a child Node process (a stand-in control replica a test can SIGSTOP): runs `script` (node -e) with
 * `args`, answers once it prints `port <n>`, and hands every other stdout line to `onLine` (a test's request counts).
 * Its lines come over a pipe, which may be read after an answer on a socket: wait for a count, do not read it once.
 */
export async function childServer(
  script: string,
  args: readonly string[],
  onLine: (line: string) => void,
): Promise<{ proc: ChildProcess; url: string }> {
  const proc = spawn(process.execPath, ['-e', script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      for (let nl = out.indexOf('\n'); nl >= 0; nl = out.indexOf('\n')) {
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        const port = /^port (\d+)$/.exec(line)?.[1];
        if (port !== undefined) resolve(`http://127.0.0.1:${port}`);
        else onLine(line);
      }
    });
    proc.once('exit', (code) => reject(new Error(`the child server exited (${code})`)));
    // A spawn failure (ENOENT; EAGAIN on a loaded host) is an 'error' event with no 'exit': unheard, it was an uncaught
    // exception and this promise never settled.
    proc.once('error', reject);
  });
  return { proc, url };
}
