/**
 * A usage error for a command name flocker does not have (s26 USER-W): yargs' own is "Unknown arguments: delete, db"
 * for `flocker volumes delete db` (the command is destroy; backup's is delete), which names neither the mistake nor
 * the way out. Pure.
 */
import { VALUED } from './completion';

/**
 * flocker's commands: each group's commands, "name alias…" (as `flocker <group> --help` lists them); none for a
 * command that takes no subcommand. unknownCommand.test checks this against the parser's --help.
 */
export const COMMANDS: Readonly<Record<string, readonly string[]>> = {
  volumes: ['list ls', 'create', 'show', 'move', 'clone', 'schedule', 'resize', 'destroy rm'],
  snapshots: ['create', 'list ls', 'show', 'destroy rm'],
  backup: ['create', 'list ls', 'restore', 'verify', 'delete rm', 'gc'],
  nodes: ['list ls', 'forget'],
  leases: ['list ls', 'acquire', 'release'],
  events: [],
  version: [],
  describe: ['volume'],
  containers: ['list ls', 'show'],
  status: [],
  ui: [],
  ca: ['initialize', 'create-control-certificate', 'create-node-certificate', 'create-api-certificate'],
  completion: [],
};

/** Words other tools use for a command that has another name here (the first of these the group has). */
const SYNONYMS: ReadonlyMap<string, readonly string[]> = new Map([
  ['delete', ['destroy', 'forget']],
  ['remove', ['destroy', 'delete', 'forget']],
  ['del', ['destroy', 'delete', 'forget']],
  ['rm', ['forget']],
  ['destroy', ['delete', 'forget']],
  ['mv', ['move']],
  ['get', ['show']],
  ['inspect', ['show']],
  ['info', ['show']],
  ['describe', ['show']],
  ['new', ['create']],
  ['add', ['create']],
  ['take', ['create']],
]);

/** The positional words before `--`, skipping options and the values of those that take one. */
function words(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--') break;
    if (a.startsWith('-')) {
      if (VALUED.has(a)) i++;
    } else out.push(a);
  }
  return out;
}

/** Optimal string alignment distance (a swap of two neighbours counts once: "destory"). */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number) => d[i]?.[j] ?? Infinity;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, at(i - 2, j - 2) + 1);
      (d[i] as number[])[j] = v;
    }
  return at(a.length, b.length);
}

/** The one command (or alias) close to `word`: a synonym's, else the nearest within a typo or two. */
function suggestion(word: string, names: readonly string[]): string | undefined {
  const lower = word.toLowerCase();
  const synonym = SYNONYMS.get(lower)?.find((s) => names.includes(s));
  if (synonym !== undefined) return synonym;
  const bound = Math.max(1, Math.floor(lower.length / 3));
  const scored = names.map((n) => ({ n, d: distance(lower, n) })).filter((x) => x.d <= bound);
  const best = Math.min(...scored.map((x) => x.d));
  const nearest = scored.filter((x) => x.d === best);
  return nearest.length === 1 ? nearest[0]?.n : undefined;
}

function problem(what: string, word: string, entries: readonly string[]): string {
  const names = entries.flatMap((e) => e.split(' '));
  const close = suggestion(word, names);
  const listed = entries.map((e) => {
    const [name, ...aliases] = e.split(' ');
    return aliases.length ? `${name} (${aliases.join(', ')})` : name;
  });
  const hint = close === undefined ? '' : ` (did you mean "${close}"?)`;
  return `unknown ${what} "${word}"${hint}: the commands are ${listed.join(', ')}`;
}

/**
 * The usage message for argv when its command word, or its group's command word, is not one of flocker's; undefined
 * when both are (an extra word after a known command is the parser's to name).
 */
export function unknownCommandProblem(argv: readonly string[]): string | undefined {
  const [group, command] = words(argv);
  if (group === undefined) return undefined;
  // Own keys only: "constructor" is no command either.
  const subs = Object.hasOwn(COMMANDS, group) ? COMMANDS[group] : undefined;
  if (subs === undefined) return problem('command', group, Object.keys(COMMANDS));
  if (command === undefined || subs.length === 0) return undefined;
  if (subs.some((s) => s.split(' ').includes(command))) return undefined;
  return problem(`${group} command`, command, subs);
}

/** Commands whose options people give as one more word: how many positionals each takes, and which such options. */
const EXTRA_HINTS: ReadonlyMap<string, { usage: string; size: boolean }> = new Map([
  ['volumes create', { usage: 'volumes create <name>', size: true }],
  ['volumes clone', { usage: 'volumes clone <name>', size: true }],
  ['leases acquire', { usage: 'leases acquire <volume>', size: false }],
]);

/** A size as flocker reads one (a number, then perhaps a unit); anything else one more word here names is a node. */
const SIZE_SHAPED = /^\d+(\.\d+)?\s*[A-Za-z]*$/;

/**
 * The usage message for one word too many after `volumes create <name>`, `volumes clone <name>` or `leases acquire
 * <volume>` (s26 USER-W: `flocker volumes create pg 20G`, `flocker leases acquire pg 127.0.0.1` said "Unknown
 * argument: 20G"): the option it is given with. Undefined for any other command.
 */
export function extraArgumentProblem(argv: readonly string[]): string | undefined {
  const [group, command, , extra] = words(argv);
  const hint = EXTRA_HINTS.get(`${group} ${command}`);
  if (hint === undefined || extra === undefined) return undefined;
  const option = hint.size && SIZE_SHAPED.test(extra) ? '--size' : '--node';
  const what = option === '--size' ? 'a size' : 'a node';
  return `unexpected "${extra}": flocker ${hint.usage} takes one name; ${what} is given as ${option} ${extra}`;
}
