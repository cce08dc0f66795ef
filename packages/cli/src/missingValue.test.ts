/**
 * Review TN (session 21), F4: `flocker volumes create x1 --size` (value missing) created a 10 GiB volume — yargs fills
 * a bare option with its default — and `flocker snapshots create x1 --name` a nameless snapshot. Failed 3/3 (the CLI
 * cases: 5/5) before: now a usage error (exit 2) naming the option, as `--size=` already was.
 */
import { recordingClient } from './testing/recordingClient';
import { runCli } from './testing/runCli';
import { EXIT } from './errors';
import { buildDeployCli } from './deploy/command';
import { missingValueProblem } from './validation';

describe('missingValueProblem', () => {
  const opts = {
    string: ['size', 'node', 'name'],
    number: ['timeout'],
    alias: { n: ['node'] },
    choices: { o: ['json', 'wide'] },
  };
  it.each([
    [['volumes', 'create', 'x1', '--size'], '--size needs a value'],
    [['volumes', 'create', 'x1', '--size', '--node', 'h'], '--size needs a value'],
    [['volumes', 'create', 'x1', '-n'], '-n needs a value'],
    [['volumes', 'create', 'x1', '--timeout', '--no-wait'], '--timeout needs a value'],
    [['list', '-o'], '-o needs a value'],
  ])('%j: %s', (argv, why) => {
    expect(missingValueProblem(argv, opts)).toBe(why);
  });
  it.each([
    [['volumes', 'create', 'x1', '--size', '1G']],
    [['volumes', 'create', 'x1', '--size=']],
    [['volumes', 'create', 'x1', '--size', '']],
    [['volumes', 'create', 'x1', '--size=-5G']],
    [['volumes', 'create', 'x1', '--timeout', '-1']],
    [['volumes', 'create', 'x1', '--wait']],
    [['run', '--', '--size']],
  ])('%j is fine', (argv) => {
    expect(missingValueProblem(argv, opts)).toBeUndefined();
  });
});

describe('flocker with an option given no value', () => {
  const { client, calls } = recordingClient();

  it.each([
    [['volumes', 'create', 'x2', '--size'], '--size'],
    [['volumes', 'create', 'x2', '--size', '--node', '10.0.0.1'], '--size'],
    [['snapshots', 'create', 'x1', '--name'], '--name'],
    [['volumes', 'create', 'x2', '--node'], '--node'],
  ])('%j is a usage error naming %s', async (argv, option) => {
    const r = await runCli(() => client, argv);
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.err).toContain(`flocker: ${option} needs a value`);
    expect(calls).toEqual([]);
  });

  it('says so in JSON with --json', async () => {
    const r = await runCli(() => client, ['volumes', 'create', 'x2', '--json', '--size']);
    expect(r.code).toBe(EXIT.USAGE);
    expect(JSON.parse(r.err)).toMatchObject({ error: { message: '--size needs a value', exit_code: 2 } });
  });
});

describe('flocker-deploy with an option given no value', () => {
  it('--port bare is a usage error, not the default port', async () => {
    const err: string[] = [];
    const exit = jest.spyOn(process, 'exit').mockImplementation((c) => {
      throw new Error(`exit ${String(c)}`);
    });
    try {
      const io = { out: () => undefined, err: (t: string) => err.push(t), readFile: () => '' };
      const run = async () =>
        buildDeployCli(['host', 'd.yml', 'a.yml', '--port'], io, () => {
          throw new Error('not expected');
        }).parseAsync();
      await expect(run()).rejects.toThrow(`exit ${EXIT.USAGE}`);
    } finally {
      exit.mockRestore();
    }
    expect(err.join('\n')).toContain('flocker-deploy: --port needs a value');
  });
});
