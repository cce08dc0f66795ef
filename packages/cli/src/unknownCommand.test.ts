/**
 * A command name flocker does not have (s26 USER-W): `flocker volumes delete db` said "Unknown arguments: delete, db".
 * Now the usage error names the word, the commands there are and, when one is close, that one.
 */
import type { FlockerClient } from '@flocker/api';
import { EXIT } from './errors';
import { runCli } from './testing/runCli';
import { COMMANDS, extraArgumentProblem, unknownCommandProblem } from './unknownCommand';

/** No command here reaches the control service: a usage error comes first. */
const noClient = (): FlockerClient => {
  throw new Error('no control service in this test');
};

describe('unknownCommandProblem (pure)', () => {
  it.each([
    [
      ['volumes', 'delete', 'db'],
      'unknown volumes command "delete" (did you mean "destroy"?): the commands are list (ls), create, show, move, clone, schedule, resize, destroy (rm)',
    ],
    [['volumes', 'remove', 'db'], 'unknown volumes command "remove" (did you mean "destroy"?)'],
    [['volumes', 'destory', 'db'], 'unknown volumes command "destory" (did you mean "destroy"?)'],
    [['volumes', 'lsit'], 'unknown volumes command "lsit" (did you mean "list"?)'],
    [['snapshots', 'delete', 's1'], 'unknown snapshots command "delete" (did you mean "destroy"?)'],
    [['backup', 'destroy', 'b1'], 'unknown backup command "destroy" (did you mean "delete"?)'],
    [['volume', 'list'], 'unknown command "volume" (did you mean "volumes"?): the commands are volumes, snapshots'],
    [['node'], 'unknown command "node" (did you mean "nodes"?)'],
    [['constructor'], 'unknown command "constructor"'],
    [['volumes', 'toString'], 'unknown volumes command "toString"'],
    [['--json', 'lease', 'list'], 'unknown command "lease" (did you mean "leases"?)'],
    [['-o', 'json', 'volumes', 'frobnicate'], 'unknown volumes command "frobnicate": the commands are list (ls)'],
    [['--control-url', 'https://x:4523', 'xyzzy'], 'unknown command "xyzzy": the commands are volumes'],
    [['--control-url=https://x:4523', 'volumes', 'mv', 'a', 'b'], '(did you mean "move"?)'],
  ])('%j', (argv, expected) => {
    expect(unknownCommandProblem(argv)).toContain(expected);
  });

  it.each([
    [['volumes', 'list', 'extra', 'words']], // list takes patterns
    [['leases', 'acquire', 'v', '127.0.0.1']], // the command is known: extraArgumentProblem's to name the extra word
    [['volumes']],
    [[]],
    [['status', 'extra']], // status has no subcommands: the extra word is an argument
    [['--', 'volumes', 'delete']],
  ])('%j: not about a command name', (argv) => {
    expect(unknownCommandProblem(argv)).toBeUndefined();
  });

  it('a suggestion only when one command is close', () => {
    expect(unknownCommandProblem(['volumes', 'zz'])).not.toContain('did you mean');
  });
});

describe('extraArgumentProblem (pure)', () => {
  it.each([
    [
      ['volumes', 'create', 'pg', '20G'],
      'unexpected "20G": flocker volumes create <name> takes one name; a size is given as --size 20G',
    ],
    [['volumes', 'create', 'pg', '1.5 GiB'], 'a size is given as --size 1.5 GiB'],
    [['volumes', 'create', 'pg', '--size', '1G', '127.0.0.1'], 'a node is given as --node 127.0.0.1'],
    [['volumes', 'create', '--node', '10.0.0.1', 'pg', '64M'], 'a size is given as --size 64M'],
    [['volumes', 'clone', 'c1', '--volume', 'demo', 'node-a'], 'flocker volumes clone <name> takes one name; a node'],
    [
      ['leases', 'acquire', 'pg', '127.0.0.1'],
      'flocker leases acquire <volume> takes one name; a node is given as --node 127.0.0.1',
    ],
    [['leases', 'acquire', 'pg', '10'], 'a node is given as --node 10'],
  ])('%j', (argv, expected) => {
    expect(extraArgumentProblem(argv)).toContain(expected);
  });

  it.each([
    [['volumes', 'create', 'pg']],
    [['volumes', 'show', 'a', 'b']],
    [['leases', 'acquire', 'pg', '--node', 'n']],
    [[]],
  ])('%j: none', (argv) => {
    expect(extraArgumentProblem(argv)).toBeUndefined();
  });
});

describe('flocker with a command it does not have', () => {
  it.each([
    [['volumes', 'delete', 'db'], 'flocker: unknown volumes command "delete" (did you mean "destroy"?)'],
    [['volume', 'list'], 'flocker: unknown command "volume" (did you mean "volumes"?)'],
    [['nodes', 'remove', 'x'], 'flocker: unknown nodes command "remove" (did you mean "forget"?)'],
  ])('%j: a usage error naming it (exit 2)', async (argv, expected) => {
    const r = await runCli(noClient, argv);
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.err).toContain(expected);
    expect(r.err).not.toContain('Unknown argument');
  });

  it('--json: the same message in the JSON error', async () => {
    const r = await runCli(noClient, ['volumes', 'delete', 'db', '--json']);
    expect(r.code).toBe(EXIT.USAGE);
    expect(JSON.parse(r.err)).toEqual({
      error: expect.objectContaining({ code: 'USAGE', message: expect.stringContaining('"destroy"') }),
    });
  });

  it.each([
    [['leases', 'acquire', 'v', '127.0.0.1'], 'a node is given as --node 127.0.0.1'],
    [['volumes', 'create', 'pg', '20G'], 'a size is given as --size 20G'],
  ])('%j: the option the extra word is given with (exit 2)', async (argv, expected) => {
    const r = await runCli(noClient, argv);
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.err).toContain(expected);
  });

  it('an extra word after another known command keeps the parser message', async () => {
    const r = await runCli(noClient, ['volumes', 'show', 'v', 'w']);
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.err).toContain('Unknown argument: w');
  });

  /** The commands (and their aliases) the "Commands:" section of `flocker <args> --help` lists. */
  async function listedCommands(args: string[], prefix: string): Promise<string[]> {
    const log = jest.spyOn(console, 'log').mockImplementation(() => undefined);
    try {
      await runCli(noClient, [...args, '--help']);
      const help = log.mock.calls.map((c) => c.join(' ')).join('\n');
      const section = help.split('Commands:\n')[1]?.split('\n\n')[0] ?? '';
      // One entry a command; its "[aliases: …]" may be wrapped onto the next line.
      return section.split(new RegExp(`^ {2}${prefix} `, 'm')).flatMap((entry) => {
        const name = entry.match(/^[a-z-]+/)?.[0];
        const aliases = entry.match(/\[aliases: ([a-z, -]+)\]/)?.[1]?.split(', ') ?? [];
        return name === undefined ? [] : [name, ...aliases];
      });
    } finally {
      log.mockRestore();
    }
  }

  // COMMANDS must be flocker's: each group's --help lists exactly these commands and aliases.
  it.each(Object.entries(COMMANDS).filter(([, subs]) => subs.length > 0))(
    'COMMANDS[%s] is what "flocker <group> --help" lists',
    async (group, subs) => {
      const listed = await listedCommands([group], `flocker ${group}`);
      expect(listed.sort()).toEqual(subs.flatMap((s) => s.split(' ')).sort());
    },
  );

  it('COMMANDS names every top-level command "flocker --help" lists', async () => {
    const listed = await listedCommands([], 'flocker');
    expect(listed.sort()).toEqual(Object.keys(COMMANDS).sort());
  });
});
