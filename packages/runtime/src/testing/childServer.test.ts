import { childServer } from './childServer';

describe('childServer: a server in a child Node process', () => {
  afterEach(() => jest.restoreAllMocks());

  it('answers its URL once the child prints its port, and hands every other line to onLine', async () => {
    const lines: string[] = [];
    const script =
      "console.log('hello'); const s = require('node:http').createServer((q, r) => r.end()); " +
      "s.listen(0, '127.0.0.1', () => console.log('port ' + s.address().port));";
    const { proc, url } = await childServer(script, [], (line) => lines.push(line));
    try {
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(lines).toEqual(['hello']);
    } finally {
      proc.kill('SIGKILL');
    }
  });

  it('rejects when the child exits before it prints a port', async () => {
    await expect(childServer('process.exit(3)', [], () => undefined)).rejects.toThrow('exited (3)');
  });

  // A spawn failure (ENOENT, or EAGAIN on a loaded host) is an 'error' event and no 'exit': without a listener it was
  // an uncaught exception and the promise never settled (the test waited out its timeout).
  it('rejects when the child cannot be started', async () => {
    jest.replaceProperty(process, 'execPath', '/nonexistent/flocker-review-node');
    await expect(childServer('', [], () => undefined)).rejects.toThrow(/ENOENT/);
  });
});
