/**
 * Checks of `flocker` input that give a sentence, not a parser's dump: sizes, storage
 * profiles, metadata, and a warning when a volume is larger than its node has free. Pure.
 */
import { formatSize, Metadata, METADATA_NAME_KEY, parseSize, storageProfileFor, type NodeState } from '@flocker/api';
import { z } from 'zod';
import { CliError, EXIT } from './errors';
import { zodMessage } from './diagnose';

/** The storage profiles: @flocker/api's rule, shared with the Docker plugin. */
export { STORAGE_PROFILES, type StorageProfile } from '@flocker/api';

/** A negative number, with or without a unit: never an option (no option is a digit). */
const NEGATIVE = /^-\d[\d.]*[A-Za-z]*$/;

/**
 * yargs reads `--size -5G` as the flags -5 and -G ("Unknown arguments: 5, G"). Joined
 * as `--size=-5G` the value reaches the command, which says what is wrong with it.
 */
export function normaliseArgv(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--') {
      out.push(...argv.slice(i));
      break;
    }
    const next = argv[i + 1];
    if (/^--[a-z][a-z-]*$/.test(a) && next !== undefined && NEGATIVE.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

/** A usage failure's message for a negative value given as a positional (yargs saw flags), else undefined. */
export function negativeArgumentProblem(argv: readonly string[]): string | undefined {
  const end = argv.indexOf('--');
  const bad = (end < 0 ? argv : argv.slice(0, end)).find((a) => NEGATIVE.test(a));
  return bad === undefined ? undefined : `"${bad}" is negative: sizes and counts are positive (e.g. ${bad.slice(1)})`;
}

/** `--size` (or another size option) in bytes, refusing negative sizes by name. */
export function sizeArgument(option: string, text: string, minimum: number): number {
  if (text.trim().startsWith('-'))
    throw new CliError(
      EXIT.USAGE,
      `${option} ${text}: a size cannot be negative (e.g. ${option} ${text.trim().slice(1)})`,
      'INVALID_SIZE',
    );
  return parseSize(text, minimum);
}

/**
 * The profile to store for a volume on a node with this backend: gold, silver or bronze in
 * lower case, or (Cinder, ScaleIO) the name as given; otherwise a usage error naming the valid ones.
 */
export function storageProfile(text: string, backend?: string): string {
  const r = storageProfileFor(text, backend);
  if ('problem' in r) throw new CliError(EXIT.USAGE, r.problem, 'INVALID_PROFILE');
  return r.profile;
}

/** What yargs knows of the current command's options (its untyped getOptions(), the parts read here). */
export const ValuedOptions = z.object({
  string: z.array(z.string()),
  number: z.array(z.string()),
  alias: z.record(z.string(), z.array(z.string())),
  choices: z.record(z.string(), z.array(z.unknown())).optional(),
});
export type ValuedOptions = z.infer<typeof ValuedOptions>;

/**
 * An option that takes a value given without one (`volumes create x --size`, `--size --node n`, `snapshots create x
 * --name` last): yargs fills it with the option's default or '' and the command goes on with a value nobody gave
 * (review TN F4: a 10 GiB volume). Names the first such option; undefined when every one has its value. Reads the
 * argv as normaliseArgv left it (a negative value is joined with "="), up to "--". A negated valued option (`--no-size`)
 * is refused too.
 */
export function missingValueProblem(argv: readonly string[], options: ValuedOptions): string | undefined {
  const valued = new Set([...options.string, ...options.number, ...Object.keys(options.choices ?? {})]);
  for (const [key, aliases] of Object.entries(options.alias)) {
    if (valued.has(key)) aliases.forEach((x) => valued.add(x));
    else if (aliases.some((x) => valued.has(x))) valued.add(key);
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--') break;
    // yargs reads `--no-size` as size false: a valued option has no "off" (review R2-4: "text.trim is not a function").
    const negated = /^--no-([A-Za-z][\w-]*)(?:=.*)?$/.exec(a)?.[1];
    if (negated !== undefined && valued.has(negated))
      return `--no-${negated}: --${negated} takes a value, so there is no --no-${negated} (leave --${negated} out for its default)`;
    const m = /^(?:--([A-Za-z][\w-]*)|-([A-Za-z]))$/.exec(a);
    const key = m?.[1] ?? m?.[2];
    if (key === undefined || !valued.has(key)) continue;
    const next = argv[i + 1];
    if (next === undefined || (next.startsWith('-') && !NEGATIVE.test(next))) return `${a} needs a value`;
  }
  return undefined;
}

/** `key=value` pairs, checked against the API's metadata rules with readable messages. */
export function metadataArguments(pairs: readonly string[], base: Record<string, string> = {}): Record<string, string> {
  const metadata: Record<string, string> = { ...base };
  for (const kv of pairs) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new CliError(EXIT.USAGE, `metadata "${kv}" is not key=value`, 'INVALID_METADATA');
    const key = kv.slice(0, i);
    // A key given by its own argument or option (the name: NAME, checked for the rule and uniqueness before) is not
    // overridden here; "__proto__" would be dropped silently by the assignment (it sets the prototype).
    if (Object.hasOwn(base, key))
      throw new CliError(
        EXIT.USAGE,
        key === METADATA_NAME_KEY
          ? `metadata "${kv}": the volume's name is the NAME argument ("${base[key]}"), not --metadata`
          : `metadata "${kv}": "${key}" is set by its own option, not --metadata`,
        'INVALID_METADATA',
      );
    if (key === '__proto__')
      throw new CliError(EXIT.USAGE, `metadata "${kv}": "__proto__" is not a usable key`, 'INVALID_METADATA');
    metadata[key] = kv.slice(i + 1);
  }
  const parsed = Metadata.safeParse(metadata);
  if (!parsed.success) {
    const why = zodMessage({
      name: 'ZodError',
      issues: parsed.error.issues.map((x) => ({ path: ['metadata', ...x.path], message: x.message })),
    });
    throw new CliError(EXIT.USAGE, why, 'INVALID_METADATA');
  }
  return metadata;
}

/**
 * A size beyond the largest volume the node's backend can create (its reported max_volume_size), refused here in
 * sizes people read: the API refuses it too (SIZE_BEYOND_BACKEND, in bytes), but only after the overcommit warning
 * had said the volume "is created anyway". Undefined when it fits or the node reports no limit.
 */
export function beyondBackendProblem(node: NodeState, bytes: number, what: string): CliError | undefined {
  const limit = node.max_volume_size;
  if (limit === undefined || bytes <= limit) return undefined;
  return new CliError(
    EXIT.USAGE,
    `${what} (${formatSize(bytes)}) is larger than the ${node.backend} backend of ${node.host} can create: at most ${formatSize(limit)}`,
    'SIZE_BEYOND_BACKEND',
  );
}

export interface OvercommitWarning {
  code: 'OVERCOMMIT';
  message: string;
  requested_bytes: number;
  available_bytes: number;
  node: string;
}

/**
 * A warning when `bytes` more than the node's backend reports free (undefined when it fits
 * or the backend has no figure). The volume is still created: loopback files are sparse,
 * and space may be freed before it is written.
 */
export function overcommitWarning(node: NodeState, bytes: number, what: string): OvercommitWarning | undefined {
  const free = node.available_bytes;
  if (free === undefined || bytes <= free) return undefined;
  return {
    code: 'OVERCOMMIT',
    message:
      `${what} (${formatSize(bytes)}) is more than the ${formatSize(free)} free on ${node.host}'s storage; ` +
      'it is created anyway, but writes will fail once the storage is full',
    requested_bytes: bytes,
    available_bytes: free,
    node: node.uuid,
  };
}

/** Why a move to a dead node is refused, by `volumes move` and the UI (a move asked there would only wait). */
export function deadTargetText(node: NodeState): string {
  return `${node.host} (node ${node.uuid.slice(0, 8)}) is not alive (last report ${node.last_seen}): nothing was changed; move the volume there once it is back`;
}
