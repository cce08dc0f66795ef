/**
 * Review R2 (session 21): the missing-value pre-check (4e77bd3) lets a negated valued option through: yargs sets
 * `--no-size` to false, and `flocker volumes create xx --no-size` ends in "flocker: text.trim is not a function", exit 1
 * (`--no-name` sends name false, `--no-node` passes node false): a usage error (exit 2) naming the option expected.
 * Failed 3/3 before the fix (the missingValueProblem cases).
 */
import { EXIT } from './errors';
import { recordingClient } from './testing/recordingClient';
import { runCli } from './testing/runCli';
import { missingValueProblem } from './validation';

describe('missingValueProblem and negations', () => {
  const opts = { string: ['size', 'node', 'name'], number: ['timeout'], alias: {}, choices: {} };
  it.each([
    [['volumes', 'create', 'xx', '--no-size']],
    [['snapshots', 'create', 'xx', '--no-name']],
    [['volumes', 'create', 'xx', '--no-timeout']],
    [['volumes', 'create', 'xx', '--no-node=x']],
  ])('%j is refused', (argv) => {
    expect(missingValueProblem(argv, opts)).toMatch(/--no-\w+/);
  });
  it.each([[['volumes', 'create', 'xx', '--no-wait']], [['run', '--', '--no-size']]])(
    '%j is fine (a boolean, or after --)',
    (argv) => {
      expect(missingValueProblem(argv, opts)).toBeUndefined();
    },
  );
});

describe('flocker with a negated valued option', () => {
  const { client, calls } = recordingClient();

  it.each([
    [['volumes', 'create', 'xx', '--no-size'], 'size'],
    [['volumes', 'create', 'xx', '--no-node'], 'node'],
    [['snapshots', 'create', 'x1', '--no-name'], 'name'],
  ])('%j is a usage error naming --no-%s; nothing is asked', async (argv, option) => {
    const r = await runCli(() => client, argv);
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.err).toContain(`flocker: --no-${option}: --${option} takes a value, so there is no --no-${option}`);
    expect(calls).toEqual([]);
  });
});
