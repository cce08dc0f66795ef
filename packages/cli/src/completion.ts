/**
 * Shell completion of volume, node, snapshot and container names (issue 21): which kind of name
 * the word being completed is, from the words before it, and the candidates. Pure; the command
 * fetches the names from the control service (bash and zsh: yargs' `flocker completion` script).
 */
import type { ClusterSnapshot, ContainerConfiguration, SnapshotConfiguration } from '@flocker/api';
import { hasUnsafe } from './format';

export type NameKind = 'volume' | 'node' | 'snapshot' | 'container';

/** Options whose value is a name. */
const OPTION_KINDS: Record<string, NameKind> = {
  '--node': 'node',
  '--volume': 'volume',
  '--snapshot': 'snapshot',
};

/** Options that take a value (so the word after them is not a positional); also unknownCommand's reading of argv. */
export const VALUED: ReadonlySet<string> = new Set([
  '--control-url',
  '--cacert',
  '--cert',
  '--key',
  '-o',
  '--output',
  '--size',
  '--profile',
  '--filesystem',
  '--metadata',
  '--snapshot-schedule',
  '--snapshot-keep',
  '--timeout',
  '--keep',
  '--name',
  '--sort',
  '--label',
  '--since',
  '--expires',
  '--to',
  '--from',
  '--endpoint',
  '--region',
  '--port',
  ...Object.keys(OPTION_KINDS),
]);

/** For `<group> <command>`: the kind of each positional after the command. */
const POSITIONALS: Record<string, NameKind[]> = {
  'volumes list': ['volume', 'volume', 'volume', 'volume'],
  'volumes ls': ['volume', 'volume', 'volume', 'volume'],
  'volumes show': ['volume'],
  'volumes move': ['volume', 'node'],
  'volumes schedule': ['volume'],
  'volumes resize': ['volume'],
  'volumes destroy': ['volume'],
  'volumes rm': ['volume'],
  'snapshots create': ['volume'],
  'snapshots show': ['snapshot'],
  'snapshots destroy': ['snapshot'],
  'snapshots rm': ['snapshot'],
  'backup create': ['volume'],
  'leases acquire': ['volume'],
  'leases release': ['volume'],
  'describe volume': ['volume'],
  'containers show': ['container'],
  // A retired node's host: the snapshot lists dead nodes too.
  'nodes forget': ['node'],
};

/**
 * `words`: what follows `flocker` on the command line, the word being completed last (possibly
 * empty). Undefined: not a name (yargs completes commands and options).
 */
export function completionKind(words: readonly string[]): NameKind | undefined {
  if (words.length === 0) return undefined;
  const current = words[words.length - 1] ?? '';
  if (current.startsWith('-')) return undefined;
  const before = words.slice(0, -1);
  const previous = before[before.length - 1];
  if (previous !== undefined && OPTION_KINDS[previous] !== undefined) return OPTION_KINDS[previous];
  const positionals: string[] = [];
  for (let i = 0; i < before.length; i++) {
    const w = before[i] ?? '';
    if (w.startsWith('-')) {
      if (VALUED.has(w)) i++;
      continue;
    }
    positionals.push(w);
  }
  const [group, command, ...rest] = positionals;
  if (group === undefined || command === undefined) return undefined;
  return POSITIONALS[`${group} ${command}`]?.[rest.length];
}

export interface CompletionData {
  cluster: ClusterSnapshot;
  snapshots: readonly SnapshotConfiguration[];
  containers: readonly ContainerConfiguration[];
}

/** The names of that kind starting with `current`, sorted, unique; ':' escaped for zsh. */
export function completionCandidates(kind: NameKind, data: CompletionData, current: string, zsh: boolean): string[] {
  let names: string[];
  if (kind === 'volume')
    names = data.cluster.datasets.filter((d) => !d.deleted).map((d) => d.metadata.name ?? d.dataset_id);
  else if (kind === 'node') names = data.cluster.nodes.map((n) => n.host);
  else if (kind === 'snapshot')
    names = data.snapshots.filter((s) => s.deleted !== true).map((s) => s.metadata.name ?? s.snapshot_id);
  else names = data.containers.map((c) => c.name);
  // The shell prints candidates raw: none holding a control or bidi character (chosen by other parties: a node's
  // address, any client's name), nor a line break that would fake another candidate (review T6 F3).
  const out = [...new Set(names.filter((n) => n.startsWith(current) && !hasUnsafe(n)))].sort();
  return zsh ? out.map((n) => n.replace(/:/g, '\\:')) : out;
}
