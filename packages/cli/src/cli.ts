/**
 * `flocker`: volumes, nodes, leases and cluster status over the control
 * service's API. Human tables by default, `--json` for scripts.
 */
import yargs, { type Argv } from 'yargs';
import {
  DATASET_FILESYSTEMS,
  DEFAULT_SNAPSHOT_KEEP,
  FlockerApiError,
  formatSize,
  isVolumeName,
  METADATA_ACCEPT_DATA_LOSS_KEY,
  METADATA_ACCEPT_REPLICA_LOSS_KEY,
  METADATA_FILESYSTEM_KEY,
  METADATA_NAME_KEY,
  METADATA_PROFILE_KEY,
  METADATA_SNAPSHOT_KEEP_KEY,
  METADATA_SNAPSHOT_SCHEDULE_KEY,
  MINIMUM_DATASET_SIZE,
  SNAPSHOT_SCHEDULE_HELP,
  type ClusterEvent,
  type ClusterSnapshot,
  type CreateDatasetRequest,
  type DatasetConfiguration,
  type FlockerClient,
  type NodeState,
  type SnapshotConfiguration,
  newSnapshotNameProblem,
  newVolumeNameProblem,
  XFS_MINIMUM_SIZE,
} from '@flocker/api';
import { collectGarbage, deleteBackup, listBackups, readManifest, verifyBackup } from '@flocker/backup';
import { backupCliError, backupPhase, isDatasetId, restorePhase, restoreSize, s3Store } from './backups';
import { caCommands } from './ca/command';
import { refuseMissingValues } from './requireValues';
import { type RefKind, resolveRef } from './resolveRef';
import { connect, type ConnectionArgs } from './connection';
import { CliError, EXIT, jsonError, jsonWarning } from './errors';
import { toCliError } from './diagnose';
import {
  deadTargetText,
  metadataArguments,
  negativeArgumentProblem,
  normaliseArgv,
  beyondBackendProblem,
  overcommitWarning,
  sizeArgument,
  STORAGE_PROFILES,
  storageProfile,
} from './validation';
import { duration, leaseHoldersText, relativeTime, shortId, table, visible, visibleText } from './format';
import { deadNodeLine, eventLine, fencingLine, recentEvents } from './failover';
import { forgetNode, forgottenText } from './nodesForget';
import { unknownStateLines } from './nodesUnknown';
import {
  clusterHealth,
  destroyProgress,
  errorsOf,
  errorText,
  isDeleting,
  keptAsideAttention,
  moveWhere,
  nodeCell,
  volumeState,
} from './health';
import {
  deadSourceAdvice,
  growPendingText,
  movePhase,
  moveWaitPhase,
  type RefusalSeen,
  refusalAfter,
  resizePhase,
} from './progress';
import {
  destroyedPhase,
  resolveSnapshot,
  scheduledBy,
  scheduleMetadata,
  snapshotName,
  snapshotRow,
  takenPhase,
  volumeSchedule,
} from './snapshots';
import {
  cloneMetadata,
  defaultCloneNode,
  diffSnapshots,
  localMoveOf,
  localMoveText,
  localSnapshotsRefusal,
  refusalWithCommands,
  realSize,
  replicaOf,
  replicaText,
  sizeText,
} from '@flocker/web-ui';
import { checkInUse, destroyAfterAsking, inUseBy, leaseHeldOnMove } from './safety';
import { extraArgumentProblem, unknownCommandProblem } from './unknownCommand';
import { runUi, uiOptions, type UiArgs } from './ui/command';
import { completionCandidates, completionKind } from './completion';
import { containerText, containerViews } from './containers';
import { agentSilenceText } from './containersAgentSilence';
import { describeText, describeVolume, keptAsideOf, keptAsideText } from './describe';
import { clientVersion, nodeReleases, versionText, type Versions } from './version';
import { Coalescer, WatchPrinter } from './watch';
import { errorMessage, followLongPoll } from '@flocker/runtime';
import { feedLine, parseSince, stamped, storedEventsSince, type FeedEvent } from './events';
import { OUTPUT_FORMATS, outputFormat, renderList, structured, wantsJson } from './output';
import {
  filterVolumes,
  leaseView,
  parseLabel,
  sortVolumes,
  viewAfter,
  VOLUME_SORT_KEYS,
  volumeView,
  type LabelFilter,
  type VolumeSortKey,
  type VolumeView,
} from './volumes';

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  /** Whether progress lines may be shown (a terminal, not a pipe). */
  interactive: boolean;
}

interface GlobalArgs extends ConnectionArgs {
  json: boolean;
  /** -o wide|json|yaml|name */
  output?: string;
}

function nameOf(d: DatasetConfiguration): string {
  return d.metadata[METADATA_NAME_KEY] ?? '';
}

/**
 * A new volume's create, asking the control service to keep its name unique (unique_name): a namesake made since
 * the command's own check (a Docker plugin's Create, say) is refused there in that check's words, not doubled.
 */
async function createVolume(
  client: FlockerClient,
  name: string,
  req: Omit<CreateDatasetRequest, 'metadata' | 'unique_name'> & { metadata: Record<string, string> },
): Promise<DatasetConfiguration> {
  try {
    return await client.createDataset({
      ...req,
      metadata: { ...req.metadata, [METADATA_NAME_KEY]: name },
      unique_name: true,
    });
  } catch (e) {
    if (e instanceof FlockerApiError && e.code === 'DATASET_NAME_IN_USE')
      throw new CliError(EXIT.CONFLICT, `a volume named "${name}" already exists`);
    throw e;
  }
}

function refusedEmpty(what: string, ref: string): void {
  if (ref.trim() === '') throw new CliError(EXIT.USAGE, `give a ${what}: an empty or blank one matches nothing`);
}

/** When the next scheduled snapshot is due, in words: a slot already begun is taken now, not "at" a past time. */
export function nextSnapshotText(nextDue: string, now: number): string {
  return Date.parse(nextDue) <= now ? `due now (its slot began at ${nextDue})` : `at ${nextDue}`;
}

/** Volumes as resolveRef takes them: a name only by the volume-name rule, so the empty name matches nothing. */
const VOLUME_REF: RefKind<DatasetConfiguration> = {
  noun: 'volume',
  idOf: (d) => d.dataset_id,
  nameOf,
  byName: isVolumeName,
  code: 'AMBIGUOUS_VOLUME',
};

/**
 * A volume given by name, full id or unique id prefix (at least 4 characters), by resolveRef's rule. Names are
 * looked up only when they follow the volume-name rule, so the empty name matches nothing
 * (not the first unnamed volume). Deleted volumes are found only when `includeDeleted`
 * says so (still being deleted); a live volume wins only over a deleted namesake. A reference more than one volume
 * answers to (a name two volumes bear — the service does not keep names unique —, or one
 * volume's name and another's id prefix) is refused with their ids: picking one would
 * let `destroy` delete the volume the user did not mean. So is a full id another volume bears as its name, live or
 * being deleted (review TN F1, R2-2); a unique prefix of that id (8 characters or more, named in the refusal) picks
 * the volume with the id.
 */
export function resolveDataset(
  datasets: DatasetConfiguration[],
  ref: string,
  options: { includeDeleted?: (d: DatasetConfiguration) => boolean } = {},
): DatasetConfiguration {
  refusedEmpty('volume name or id', ref);
  const include = options.includeDeleted;
  const found = resolveRef(
    VOLUME_REF,
    datasets,
    datasets.filter((d) => !d.deleted),
    include ? datasets.filter((d) => d.deleted && include(d)) : [],
    ref,
  );
  if (found) return found;
  throw new CliError(EXIT.NOT_FOUND, `no volume named or with id "${ref}" (see "flocker volumes list")`);
}

/**
 * The dataset id `backup list --volume REF` lists. With the control service's volumes, resolveDataset's rule (deleted
 * volumes too), so a full id another volume bears as its name is refused as ambiguous (review R2-5); a full id no
 * volume answers to is taken as it is (the volume may be long gone, its backups not). Without them (`datasets`
 * undefined: the control service did not answer), only a full id.
 */
export function backupsVolumeId(datasets: DatasetConfiguration[] | undefined, ref: string): string {
  const asDatasetId = isDatasetId(ref) ? ref.toLowerCase() : undefined;
  if (datasets === undefined) {
    if (asDatasetId !== undefined) return asDatasetId;
    throw new CliError(EXIT.UNREACHABLE, `cannot look the volume name "${ref}" up without the control service`);
  }
  try {
    return resolveDataset(datasets, ref, { includeDeleted: () => true }).dataset_id;
  } catch (e) {
    if (asDatasetId !== undefined && e instanceof CliError && e.exitCode === EXIT.NOT_FOUND) return asDatasetId;
    throw e;
  }
}

/** Local storage takes no snapshots through the API yet (issue 24): refused before anything is asked. */
function noLocalSnapshots(s: ClusterSnapshot, nodeUuid: string, what: string): void {
  const why = localSnapshotsRefusal(s, nodeUuid, what);
  if (why !== null) throw new CliError(EXIT.FAILURE, why, 'NOT_ON_LOCAL_STORAGE');
}

/**
 * A node given by UUID, unique UUID prefix, or host address. A reference several nodes answer to (an address two
 * nodes report, or an address and another node's UUID prefix) is refused with their UUIDs and whether each is alive,
 * even when only one of them is alive: a node chooses the address it reports, so a compromised node reporting a
 * down node's address would otherwise receive what was meant for that one; the UUID is the only name it cannot take.
 */
export function resolveNode(nodes: NodeState[], ref: string): NodeState {
  refusedEmpty('node UUID or address', ref);
  const uuid = ref.toLowerCase();
  const exact = nodes.find((n) => n.uuid === uuid);
  if (exact) return exact;
  const byHost = nodes.filter((n) => n.host === ref);
  const byPrefix = nodes.filter((n) => n.uuid.startsWith(uuid));
  const candidates = [...new Map([...byHost, ...byPrefix].map((n) => [n.uuid, n])).values()];
  if (candidates.length === 1 && candidates[0]) return candidates[0];
  if (candidates.length > 1) {
    const list = candidates
      .slice(0, 5)
      .map((n) => `${n.uuid} (${n.alive ? 'alive' : 'dead'})`)
      .join(', ');
    const more = candidates.length > 5 ? ` and ${candidates.length - 5} more` : '';
    // All but one dead: the ordinary state after a host is reprovisioned under a new UUID (FR19-5). Forgetting the
    // old node is the way out; with two alive it would not help (one of them may report an address not its own).
    const dead = candidates.filter((n) => !n.alive);
    const forget =
      dead.length === candidates.length - 1
        ? `, or forget the dead ${dead.length === 1 ? 'node' : 'nodes'} if the host was reprovisioned: ` +
          dead
            .slice(0, 5)
            .map((n) => `flocker nodes forget ${n.uuid}`)
            .join('; ')
        : '';
    throw new CliError(
      EXIT.USAGE,
      byHost.length > 0
        ? `"${ref}" matches ${candidates.length} nodes (${list}${more}): give the UUID${forget}`
        : `"${ref}" matches ${candidates.length} nodes (${list}${more}); give more of the UUID${forget}`,
      'AMBIGUOUS_NODE',
    );
  }
  throw new CliError(EXIT.NOT_FOUND, `no node "${ref}" (see "flocker nodes list")`);
}

/** A wait not over yet: its step, the error seen; fatal ends it (exit 1, or `exitCode`). */
interface WaitStep {
  step: string;
  error?: string;
  fatal?: boolean;
  code?: string;
  exitCode?: number;
  /** The step's kind when its text carries changing figures (progress.ts Phase): a log gets one line per stage. */
  stage?: string;
}

async function waitUntil<T>(
  client: FlockerClient,
  io: Io,
  timeoutSeconds: number,
  check: (s: ClusterSnapshot) => { done: T } | WaitStep | Promise<{ done: T } | WaitStep>,
  /** The longest long-poll: a wait for something that may bring no new generation (a repeated report) looks sooner. */
  sliceMs = 25_000,
): Promise<T> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  let since: string | undefined;
  let last = '';
  /** The stages (and errors) a log got a line for. */
  const logged = new Set<string>();
  for (;;) {
    const remaining = deadline - Date.now();
    const snapshot = await client.waitForCluster(since, Math.max(0, Math.min(remaining, sliceMs)));
    since = snapshot.generation;
    const r = await check(snapshot);
    if ('done' in r) return r.done;
    // One line each, whatever a host or an agent's error message holds.
    const step = visible(r.step);
    const error = r.error !== undefined ? visible(r.error) : undefined;
    const line = error ? `${step} — ${error}` : step;
    // A terminal gets every change; a log (a pipe, a file) the same lines once per stage reached (and error): not
    // per tick of figures, nor per round of a move whose source stays in use (copying, caught up, copying, …).
    const stage = `${r.stage ?? step}${error ? ` — ${error}` : ''}`;
    if (line !== last) {
      if (io.interactive || !logged.has(stage)) io.err(`  … ${line}`);
      last = line;
      logged.add(stage);
    }
    if (r.fatal) throw new CliError(r.exitCode ?? EXIT.FAILURE, error ?? step, r.code);
    if (Date.now() >= deadline) {
      // Only the wait ends (s26 USER-W: a user took a timed-out create for a failed one).
      throw new CliError(
        EXIT.TIMEOUT,
        `timed out after ${timeoutSeconds}s while ${step}${error ? `: ${error}` : ''}. ` +
          'The change stays recorded and goes on when it can (flocker status); --timeout waits longer',
      );
    }
  }
}

function waitForMounted(
  client: FlockerClient,
  io: Io,
  datasetId: string,
  nodeUuid: string,
  timeout: number,
  /** A move's wait: the snapshot taken before the move (see moveWaitPhase). */
  before?: ClusterSnapshot,
  /** The move set an opt-in: the target's refusal (SOURCE_UNREACHABLE) is not final. */
  optedIn = false,
) {
  // A move's wait for the target's next report looks every 2 s: an unchanged report moves no generation.
  const sliceMs = before !== undefined ? 2_000 : undefined;
  let refusal: RefusalSeen | undefined;
  return waitUntil(
    client,
    io,
    timeout,
    async (s): Promise<{ done: string } | WaitStep> => {
      let p =
        before !== undefined
          ? moveWaitPhase(before, s, datasetId, nodeUuid, undefined, optedIn)
          : movePhase(s, datasetId, nodeUuid);
      // A move's "mounted" as the control service judges it (the report's configuration_version: moveWaitPhase).
      if (p.phase === 'mounted' && before !== undefined)
        p = moveWaitPhase(before, s, datasetId, nodeUuid, await client.listDatasetState({ datasetId }), optedIn);
      if (p.phase === 'mounted') return { done: p.path };
      if (p.phase === 'deleted') return { step: 'deleted', error: 'the volume was deleted', fatal: true };
      if (before === undefined || p.fatal === true) return p;
      // A refusal only the user ends (TWO_LIVE_COPIES, SOURCE_UNREACHABLE with an opt-in that did not help): after a
      // grace (a refusal from before the agent acted on the move goes by then), no point waiting out the timeout.
      const seen = refusalAfter(refusal, p, Date.now());
      refusal = seen.seen;
      if (!seen.final || p.refused === undefined) return p;
      return {
        step: p.step,
        error: refusalWithCommands(s, datasetId, p.refused.message),
        fatal: true,
        code: p.refused.code,
        exitCode: EXIT.REFUSED,
      };
    },
    sliceMs,
  );
}

/**
 * `flocker --version` (with options only, no command) is `flocker version --client`: yargs' own --version is
 * off because `version` is a command, which alone would answer "Name a command" to the usual flag.
 */
export function versionFlag(argv: readonly string[]): string[] {
  // Words that are not the value of a global option taking one (-o json, --control-url URL, …).
  const takesValue = new Set(['-o', '--output', '--control-url', '--cacert', '--cert', '--key']);
  const words = argv.filter((x, i) => !x.startsWith('-') && !takesValue.has(argv[i - 1] ?? ''));
  if (!argv.includes('--version') || words.length > 0) return [...argv];
  return ['version', '--client', ...argv.filter((x) => x !== '--version')];
}

/** checkInUse's warning ("warning: …") as a warning with a code, for --json. */
function inUseWarning(text: string | undefined): { code: string; message: string } | undefined {
  return text === undefined ? undefined : { code: 'IN_USE_FORCED', message: text.replace(/^warning: /, '') };
}

export function buildCli(
  argv: string[],
  rawIo: Io,
  makeClient: (a: ConnectionArgs) => FlockerClient = (a) => connect(a),
): Argv<GlobalArgs> {
  // Every line printed shows control characters as escapes (review T6 F3): hosts, metadata, names and error
  // messages come from other parties. JSON keeps its values (the escapes are JSON's); YAML quotes such strings.
  const io: Io = {
    ...rawIo,
    out: (t) => rawIo.out(visibleText(t)),
    err: (t) => rawIo.err(visibleText(t)),
  };
  /** A usage error, as yargs' own are answered: exit 2. */
  const usageExit = (why: string): never => {
    if (wantsJson(argv)) io.err(jsonError(new CliError(EXIT.USAGE, why)));
    else io.err(`flocker: ${why}\nRun with --help for usage.`);
    process.exit(EXIT.USAGE);
  };
  const print = (a: GlobalArgs, value: unknown, human: () => string) =>
    io.out(structured(outputFormat(a), value) ?? human());
  /** The volume as every volumes command returns it (volumeView), from a fresh snapshot. */
  const freshView = async (client: FlockerClient, d: DatasetConfiguration) =>
    viewAfter(await client.waitForCluster(undefined, 0), d);
  // Warnings go to stderr (JSON lines with --json), so stdout keeps the result's shape.
  // Any further fields of the warning (e.g. OvercommitWarning's figures) go into its JSON.
  const warn = (a: GlobalArgs, w: { code: string; message: string } | undefined) => {
    if (w === undefined) return;
    const { code, message, ...details } = w;
    io.err(a.json ? jsonWarning(code, message, details) : `flocker: warning: ${message}`);
  };
  const run =
    <A extends GlobalArgs>(body: (a: A, client: FlockerClient) => Promise<void>) =>
    // yargs infers each command's argument type from its builder; the explicit A
    // here restates it, so the cast is where the two meet.
    async (args: { [key: string]: unknown }) => {
      const a = args as unknown as A;
      // -o json is --json: errors and warnings become JSON lines too.
      if (a.output === 'json') a.json = true;
      try {
        await body(a, makeClient(a));
      } catch (e) {
        const err = await toCliError(e, a);
        if (err === undefined) throw e;
        io.err(a.json ? jsonError(err) : `flocker: ${err.message}`);
        process.exitCode = err.exitCode;
      }
    };
  /**
   * Follows the control service's long-poll until `seconds` (if given) have passed or the process
   * is interrupted. A lost control service is said once on stderr; following resumes when it answers.
   */
  const follow = async (
    client: FlockerClient,
    seconds: number | undefined,
    onSnapshot: (s: ClusterSnapshot) => void,
  ) => {
    const stop = new AbortController();
    const deadline = seconds === undefined ? Infinity : Date.now() + seconds * 1000;
    const timer = seconds === undefined ? undefined : setTimeout(() => stop.abort(), seconds * 1000);
    let lost = false;
    try {
      await followLongPoll<ClusterSnapshot>({
        wait: (since, ms) => client.waitForCluster(since, ms),
        // Never hold a poll past the deadline.
        waitMs: () => Math.max(0, Math.min(25_000, deadline - Date.now())),
        onSnapshot: (s) => {
          if (lost) io.err('flocker: the control service answers again');
          lost = false;
          onSnapshot(s);
        },
        onError: (e, failures) => {
          if (failures === 1) io.err(`flocker: lost the control service (${errorMessage(e)}); retrying`);
          lost = true;
        },
        backoff: { initialMs: 1000, maxMs: 10_000, jitter: true },
        signal: stop.signal,
      });
    } finally {
      clearTimeout(timer);
    }
  };
  /**
   * A list command's output, once or with --watch again at every change (as `volumes list --watch`). `rowsOf` may ask
   * the API more than the snapshot holds; it runs for the newest snapshot, one at a time, and every `refreshMs` too
   * for what a cluster change does not announce (containers' reported state).
   */
  const listOrWatch = async <T>(
    a: GlobalArgs & { watch?: boolean; timeout?: number; quiet?: boolean },
    client: FlockerClient,
    rowsOf: (snapshot: ClusterSnapshot) => Promise<T[]>,
    render: (rows: readonly T[]) => string,
    o: { key?: (rows: readonly T[]) => unknown; refreshMs?: number } = {},
  ): Promise<void> => {
    if (a.watch !== true) return io.out(render(await rowsOf(await client.waitForCluster(undefined, 0))));
    const printer = new WatchPrinter<T>(io.out, outputFormat(a) === 'json' && a.quiet !== true, o.key);
    // A failed API call is retried at the next change (follow says when the control service is lost).
    const lists = new Coalescer<ClusterSnapshot>(async (s) => void printer.show(await rowsOf(s), render));
    let latest: ClusterSnapshot | undefined;
    const tick =
      o.refreshMs === undefined
        ? undefined
        : setInterval(() => latest !== undefined && lists.push(latest), o.refreshMs);
    try {
      await follow(client, a.timeout, (snapshot) => {
        latest = snapshot;
        lists.push(snapshot);
      });
    } finally {
      clearInterval(tick);
    }
    await lists.idle();
  };
  /** --watch and its --timeout, as on `volumes list`. */
  const watchOptions = <T>(b: Argv<T>) =>
    b
      .option('watch', {
        alias: 'w',
        type: 'boolean',
        default: false,
        describe: 'Print the list again whenever it changes (with --json: one line per change)',
      })
      .option('timeout', { type: 'number', describe: 'With --watch: stop after this many seconds' });
  /** `until` says what --wait waits for, e.g. 'the volume is mounted on its node'. */
  const waitOptions = <T>(y: Argv<T>, until = 'the change has taken effect') =>
    y
      .option('wait', {
        type: 'boolean',
        default: true,
        describe: `Wait until ${until} (--no-wait returns at once)`,
      })
      .option('timeout', { type: 'number', default: 120, describe: 'Seconds to wait' });

  // Read again, before validation, by refuseMissingValues: a bare option's parsed value is already its default.
  const args = normaliseArgv(versionFlag(argv));
  return yargs(args)
    .scriptName('flocker')
    .usage('$0 <command> [options]\n\nManage Flocker volumes (datasets) across a cluster.')
    .option('control-url', {
      type: 'string',
      describe:
        'Control service URL [env FLOCKER_CONTROL_URL; default https://127.0.0.1:4523 with the local cluster ' +
        'credentials in /etc/flocker (cluster.crt, admin.crt, admin.key), else http://127.0.0.1:4523]',
    })
    .option('cacert', {
      type: 'string',
      describe: 'Cluster CA certificate [env FLOCKER_CA_CERT; with --cert, default /etc/flocker/cluster.crt]',
    })
    .option('cert', { type: 'string', describe: 'API user certificate [env FLOCKER_CERT]' })
    .option('key', { type: 'string', describe: 'API user private key [env FLOCKER_KEY]' })
    .option('json', { type: 'boolean', default: false, describe: 'Machine-readable output (same as -o json)' })
    .option('output', {
      alias: 'o',
      type: 'string',
      choices: OUTPUT_FORMATS,
      describe: 'Output format: wide (more columns), json, yaml, name (one name a line; lists)',
    })
    .command('volumes', 'List, create, show, move, clone, resize, schedule and destroy volumes', (v) =>
      v
        .command(
          ['list [patterns..]', 'ls [patterns..]'],
          'List volumes',
          (b) =>
            b
              .positional('patterns', {
                type: 'string',
                array: true,
                describe: "Only names (or ids) matching these globs, e.g. 'pg*'",
              })
              .option('all', { type: 'boolean', default: false, describe: 'Include deleted volumes' })
              .option('sort', {
                type: 'string',
                choices: VOLUME_SORT_KEYS,
                default: 'name',
                describe: 'Order by (created: the order they were created in)',
              })
              .option('node', { type: 'string', describe: 'Only volumes on this node (UUID, prefix or address)' })
              .option('label', {
                type: 'array',
                string: true,
                default: [] as string[],
                describe: 'Only volumes whose metadata has key=value (or just the key)',
              })
              .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Only dataset ids' })
              .option('watch', {
                alias: 'w',
                type: 'boolean',
                default: false,
                describe: 'Print the list again whenever it changes (with --json: one line per change)',
              })
              .option('timeout', { type: 'number', describe: 'With --watch: stop after this many seconds' })
              .example('$0 volumes list', 'NAME DATASET SIZE NODE STATE PATH, one line a volume, by name')
              .example('$0 volumes list --watch', 'follow the cluster until Ctrl-C')
              .example("$0 volumes list 'pg*' --node 10.0.0.5 --label owner=alice", 'filters')
              .example('$0 volumes list -o name --sort size', 'names, smallest first')
              .example("$0 volumes list --json | jq -r '.[].name'", 'for scripts'),
          run<
            GlobalArgs & {
              patterns?: string[];
              all: boolean;
              sort: string;
              node?: string;
              label: string[];
              quiet: boolean;
              watch: boolean;
              timeout?: number;
            }
          >(async (a, client) => {
            const labels = a.label.map((l): LabelFilter => {
              const f = parseLabel(l);
              if (f === undefined) throw new CliError(EXIT.USAGE, `--label ${l}: give key=value or key`);
              return f;
            });
            const [datasets, first] = await Promise.all([client.listDatasets(), client.waitForCluster(undefined, 0)]);
            const nodeUuid = a.node === undefined ? undefined : resolveNode(first.nodes, a.node).uuid;
            const rowsOf = (configured: DatasetConfiguration[], snapshot: ClusterSnapshot) =>
              sortVolumes(
                filterVolumes(
                  // Deleted volumes a node still has are listed as "deleting" (with --all: every deleted one).
                  configured
                    .filter((d) => a.all || !d.deleted || isDeleting(snapshot, d))
                    .map((d) => volumeView(snapshot, d)),
                  { patterns: a.patterns ?? [], labels, ...(nodeUuid !== undefined ? { nodeUuid } : {}) },
                ),
                a.sort as VolumeSortKey,
              );
            const render = (rows: VolumeView[]) =>
              renderList(a, rows, {
                headers: ['NAME', 'DATASET', 'SIZE', 'NODE', 'STATE', 'PATH'],
                cells: (r) => [
                  r.name || '-',
                  shortId(r.dataset_id),
                  // The real size: a node rounds the size asked for up to its backend's unit (s23 USER-T F8).
                  sizeText(null, realSize(r.maximum_size || null, r.size)),
                  nodeCell(r),
                  r.grow_pending !== undefined
                    ? `${r.state} (grow pending)`
                    : r.reason === undefined || r.state === 'mounted' || r.state === 'error'
                      ? r.state
                      : r.refused !== undefined
                        ? `${r.state} (refused: ${r.refused})`
                        : `${r.state} (error)`,
                  r.path,
                ],
                wideHeaders: ['USED', 'NODE UUID', 'PROFILE', 'METADATA', 'REASON'],
                wideCells: (r) => [
                  r.used_bytes === null ? '-' : formatSize(r.used_bytes),
                  r.node_uuid,
                  r.metadata[METADATA_PROFILE_KEY] ?? '-',
                  Object.entries(r.metadata)
                    .filter(([k]) => k !== METADATA_NAME_KEY)
                    .map(([k, v]) => `${k}=${v}`)
                    .join(',') || '-',
                  r.reason ?? '',
                ],
                name: (r) => r.name || r.dataset_id,
                id: (r) => r.dataset_id,
              });
            if (!a.watch) return io.out(render(rowsOf(datasets, first)));
            // --watch: the snapshot carries the configuration too; print again whenever the output changes.
            let last: string | undefined;
            await follow(client, a.timeout, (snapshot) => {
              const rows = rowsOf(snapshot.datasets, snapshot);
              const text = outputFormat(a) === 'json' && !a.quiet ? JSON.stringify(rows) : render(rows);
              if (text === last) return;
              io.out(last === undefined || outputFormat(a) === 'json' ? text : `\n${text}`);
              last = text;
            });
          }),
        )
        .command(
          'create <name>',
          'Create a volume on a node and wait until it is mounted there',
          (b) =>
            waitOptions(
              b
                .positional('name', { type: 'string', demandOption: true })
                .option('size', { type: 'string', default: '10GiB', describe: 'Size, e.g. 512MiB, 10G' })
                .option('node', {
                  type: 'string',
                  describe: 'Node UUID, UUID prefix or address (default: the only node)',
                })
                .option('profile', {
                  type: 'string',
                  describe: `Storage profile: ${STORAGE_PROFILES.join(', ')} (EBS: io2, gp3, sc1; Cinder: any volume type; ScaleIO: any profile of profile_storage_pools)`,
                })
                .option('filesystem', {
                  type: 'string',
                  choices: DATASET_FILESYSTEMS,
                  describe: 'File system to format it with (xfs: at least 300MiB; grows online where ext4 cannot)',
                })
                .option('metadata', {
                  type: 'array',
                  string: true,
                  default: [] as string[],
                  describe: 'key=value pairs to store',
                })
                .option('snapshot-schedule', {
                  type: 'string',
                  describe: `Snapshots taken by the control service: ${SNAPSHOT_SCHEDULE_HELP} (at least every 5m)`,
                })
                .option('snapshot-keep', {
                  type: 'string',
                  describe: `How many scheduled snapshots to keep, 1-1000 (default ${DEFAULT_SNAPSHOT_KEEP}); older ones are deleted, manual ones never`,
                })
                .example('$0 volumes create pgdata --size 20G --node 10.0.0.5', '')
                // Described on the line before: yargs wraps a long example's command into its description column.
                .example('# a day of hourly snapshots:', '')
                .example('$0 volumes create pgdata --snapshot-schedule hourly --snapshot-keep 24', ''),
              'the volume is mounted on its node',
            ),
          run<
            GlobalArgs & {
              name: string;
              size: string;
              node?: string;
              profile?: string;
              filesystem?: string;
              metadata: string[];
              snapshotSchedule?: string;
              snapshotKeep?: string;
              wait: boolean;
              timeout: number;
            }
          >(async (a, client) => {
            const nameProblem = newVolumeNameProblem(a.name);
            if (nameProblem !== undefined) throw new CliError(EXIT.USAGE, nameProblem);
            const size = sizeArgument('--size', a.size, MINIMUM_DATASET_SIZE);
            const metadata = metadataArguments(a.metadata, { [METADATA_NAME_KEY]: a.name });
            if (a.filesystem) metadata[METADATA_FILESYSTEM_KEY] = a.filesystem;
            Object.assign(metadata, scheduleMetadata(a.snapshotSchedule, a.snapshotKeep));
            if (a.filesystem === 'xfs' && size < XFS_MINIMUM_SIZE)
              throw new CliError(EXIT.USAGE, `an xfs volume needs --size of at least 300MiB`);
            const [datasets, snapshot] = await Promise.all([
              client.listDatasets(),
              client.waitForCluster(undefined, 0),
            ]);
            if (datasets.some((d) => !d.deleted && nameOf(d) === a.name))
              throw new CliError(EXIT.CONFLICT, `a volume named "${a.name}" already exists`);
            let node: NodeState;
            if (a.node) node = resolveNode(snapshot.nodes, a.node);
            else {
              const alive = snapshot.nodes.filter((n) => n.alive);
              if (alive.length !== 1 || !alive[0])
                throw new CliError(EXIT.USAGE, `there are ${alive.length} live nodes: choose one with --node`);
              node = alive[0];
            }
            if (a.profile !== undefined) metadata[METADATA_PROFILE_KEY] = storageProfile(a.profile, node.backend);
            if (a.snapshotSchedule !== undefined) noLocalSnapshots(snapshot, node.uuid, '--snapshot-schedule');
            const beyond = beyondBackendProblem(node, size, a.name);
            if (beyond !== undefined) throw beyond;
            warn(a, overcommitWarning(node, size, a.name));
            const d = await createVolume(client, a.name, { primary: node.uuid, maximum_size: size, metadata });
            if (!a.wait)
              return print(
                a,
                await freshView(client, d),
                () => `Created ${a.name} (${d.dataset_id}) on ${visible(node.host)}`,
              );
            if (!a.json) io.err(`Creating ${a.name} (${formatSize(size)}) on ${visible(node.host)}`);
            const path = await waitForMounted(client, io, d.dataset_id, node.uuid, a.timeout);
            print(a, await freshView(client, d), () => `${a.name} is mounted on ${visible(node.host)} at ${path}`);
          }),
        )
        .command(
          'show <volume>',
          'Show one volume (by name or id)',
          (b) =>
            b
              .positional('volume', { type: 'string', demandOption: true })
              .example('$0 volumes show pgdata', 'by name, id or id prefix'),
          run<GlobalArgs & { volume: string }>(async (a, client) => {
            const [datasets, snapshot, leases, snapshots] = await Promise.all([
              client.listDatasets(),
              client.waitForCluster(undefined, 0),
              client.listLeases(),
              client.listSnapshots(),
            ]);
            const d = resolveDataset(datasets, a.volume, { includeDeleted: (x) => isDeleting(snapshot, x) });
            const st = volumeState(snapshot, d);
            const lease = leases.find((l) => l.dataset_id === d.dataset_id);
            const errors = errorsOf(snapshot, d.dataset_id);
            const now = Date.now();
            const schedule = volumeSchedule(d, snapshots, now, snapshot);
            // Local storage (issue 24): a running move and the standby replica, as describe and the UI show them.
            const localMove = localMoveOf(snapshot, d.dataset_id);
            const replica = replicaOf(snapshot, d.dataset_id);
            const keptAside = keptAsideOf(snapshot, d.dataset_id);
            const view = { ...volumeView(snapshot, d), lease: lease ?? null, errors, snapshot_schedule: schedule };
            // A local move: where the data is and where it goes, as `volumes list` says (not the target as "Primary").
            const where = moveWhere(view);
            print(a, { ...view, local_move: localMove, replica, kept_aside: keptAside }, () =>
              [
                `Name:       ${visible(nameOf(d)) || '-'}`,
                `Dataset:    ${d.dataset_id}`,
                `Size:       ${sizeText(d.maximum_size || null, view.size)}`,
                ...(where !== undefined
                  ? [`On:         ${where.on}`, `Moving to:  ${where.to}`]
                  : [
                      `Primary:    ${visible(snapshot.nodes.find((n) => n.uuid === d.primary)?.host ?? '?')} (${d.primary})`,
                    ]),
                `State:      ${st.state}${st.path ? ` at ${st.path}` : ''}${st.reason !== undefined ? ` — ${st.reason}` : ''}`,
                ...(st.grow_pending !== undefined ? [`Grow:       ${growPendingText(snapshot, d.dataset_id)}`] : []),
                ...(localMove !== null ? [`Moving:     ${localMoveText(localMove)}`] : []),
                ...(replica !== null ? [`Replica:    ${replicaText(replica, now)}`] : []),
                ...keptAside.map(keptAsideText),
                `Lease:      ${lease ? `held by ${visible(leaseView(lease, datasets, snapshot.nodes).node)} (${leaseHoldersText(lease)}), expires ${duration(lease.expires)}${lease.pinned ? ', pinned' : ''}` : 'none'}`,
                `Snapshots:  ${
                  schedule === null
                    ? 'no schedule'
                    : schedule.not_run !== null
                      ? `${schedule.schedule}, keep ${schedule.keep} (${schedule.kept} kept); ${schedule.not_run}`
                      : `${schedule.schedule}, keep ${schedule.keep} (${schedule.kept} kept); next at ${schedule.next_due} (${relativeTime(new Date(schedule.next_due), new Date(now))})`
                }`,
                `Metadata:   ${
                  Object.entries(d.metadata)
                    .map(([k, v]) => `${visible(k)}=${visible(v)}`)
                    .join(', ') || '-'
                }`,
                ...errors.map((e) => `Error:      ${visible(errorText(e))}`),
              ]
                // Each entry is one line: a line feed in a host, path, holder or reason it shows cannot start another.
                .map(visible)
                .join('\n'),
            );
          }),
        )
        .command(
          'move <volume> <node>',
          'Move a volume to another node and wait until it is mounted there',
          (b) =>
            waitOptions(
              b
                .positional('volume', { type: 'string', demandOption: true })
                .positional('node', { type: 'string', demandOption: true })
                .option('accept-replica-loss', {
                  type: 'boolean',
                  default: false,
                  describe:
                    "Local storage: the volume's node is dead; start it on <node> from the standby replica there, " +
                    'losing every write after it (sets clusterhq:flocker:accept-replica-loss for this move only: the ' +
                    'control service removes it once the volume is mounted on <node>, or at the next move; a later ' +
                    'failover asks again)',
                })
                .option('accept-data-loss', {
                  type: 'boolean',
                  default: false,
                  describe:
                    'Local storage: a node refuses the volume because another node may hold its data and has not ' +
                    'reported it (SOURCE_UNREACHABLE naming clusterhq:flocker:accept-data-loss); give up what that node ' +
                    'may hold: start it empty, or mount the copy here (sets clusterhq:flocker:accept-data-loss for ' +
                    'this move only: removed once the volume is mounted on <node>, or at the next move). Only once ' +
                    'that node is gone for good',
                })
                .option('when-released', {
                  type: 'boolean',
                  default: false,
                  describe:
                    'Local storage: move a volume a container (or any lease holder) on its node is still using. ' +
                    'The data is copied to <node> now while it stays in use there; the move finishes once every ' +
                    'container there lets it go (docker stop, or its lease released). With --wait (the default) ' +
                    'shows the phase and progress and waits for that release (raise --timeout; a timeout ends the ' +
                    'wait, not the move)',
                })
                .example('$0 volumes move pgdata 10.0.0.6', 'waits until mounted on 10.0.0.6, showing each step')
                .example('$0 volumes move pgdata 5d9e --no-wait', 'node by UUID prefix; return at once')
                .example(
                  '$0 volumes move pgdata b --when-released --timeout 3600',
                  'copy now while its container on the old node runs; done once that container stops',
                )
                .epilogue(
                  'Local storage (dataset backend local): the move copies the data to the new node while the volume ' +
                    'stays in use on the old one (progress: bytes sent of the total, rounds), then waits until ' +
                    'nothing uses it there (stop its containers) and sends the last changes: the volume is unavailable ' +
                    'only for that. A --timeout or Ctrl-C ends the wait, not the move. Data on a dead node is not ' +
                    'moved: the move fails (exit 1) naming the node, and goes on if it comes back; ' +
                    '--accept-replica-loss takes the standby replica instead (its age: flocker describe volume). ' +
                    'A refusal only you can end (TWO_LIVE_COPIES, SOURCE_UNREACHABLE) still reported 10 s after the ' +
                    'move ends the wait at once: exit 8 (REFUSED) with the refusal and its way out; the move stays ' +
                    'asked for.',
                ),
              'the volume is mounted on the new node',
            ),
          run<
            GlobalArgs & {
              volume: string;
              node: string;
              wait: boolean;
              timeout: number;
              acceptReplicaLoss: boolean;
              acceptDataLoss: boolean;
              whenReleased: boolean;
            }
          >(async (a, client) => {
            const [datasets, snapshot] = await Promise.all([
              client.listDatasets(),
              client.waitForCluster(undefined, 0),
            ]);
            const d = resolveDataset(datasets, a.volume);
            const node = resolveNode(snapshot.nodes, a.node);
            // A dead node acts on nothing: the move would only be asked (a local volume's source then waits for it).
            if (!node.alive && d.primary !== node.uuid)
              throw new CliError(EXIT.FAILURE, deadTargetText(node), 'NODE_NOT_ALIVE');
            // The opt-ins a local agent's refusal names (issue 24), set with the move: for this move only (the
            // control service removes them once it completed, or at the next move).
            const optIns = {
              ...(a.acceptReplicaLoss ? { [METADATA_ACCEPT_REPLICA_LOSS_KEY]: 'true' } : {}),
              ...(a.acceptDataLoss ? { [METADATA_ACCEPT_DATA_LOSS_KEY]: 'true' } : {}),
            };
            const update = {
              primary: node.uuid,
              ...(Object.keys(optIns).length > 0 ? { metadata: optIns } : {}),
              // Sent only when asked: a control service before it refuses the field (400).
              ...(a.whenReleased ? { when_released: true } : {}),
            };
            const moved = await client.updateDataset(d.dataset_id, update).catch(async (e: unknown) => {
              if (!(e instanceof FlockerApiError && e.code === 'LEASE_HELD')) throw e;
              // Asked --when-released and refused all the same: the service says why it does not apply.
              if (a.whenReleased)
                throw new CliError(
                  EXIT.CONFLICT,
                  `volume ${visible(nameOf(d) || d.dataset_id)} cannot move, even when released: ${e.description}`,
                  'LEASE_HELD',
                );
              const leases = await client.listLeases().catch(() => snapshot.leases);
              const lease = leases.find((l) => l.dataset_id === d.dataset_id);
              throw leaseHeldOnMove(nameOf(d) || d.dataset_id, lease, snapshot.nodes, e.description, d.primary);
            });
            const label = visible(nameOf(d) || d.dataset_id);
            const movingText =
              d.primary === node.uuid
                ? `${label} is already on ${visible(node.host)}`
                : `Moving ${label} to ${visible(node.host)}`;
            if (!a.wait) return print(a, await freshView(client, moved), () => movingText);
            // Shown in text only: visible, so a line feed in a name or host cannot start a line.
            const name = visible(nameOf(d) || d.dataset_id);
            const from = visible(snapshot.nodes.find((n) => n.uuid === d.primary)?.host ?? d.primary);
            const whenReleased = a.whenReleased && d.primary !== node.uuid ? ` once nothing on ${from} uses it` : '';
            if (!a.json)
              io.err(
                d.primary === node.uuid
                  ? movingText
                  : `${movingText}${whenReleased ? ` (finishing${whenReleased})` : ''}`,
              );
            const wait = waitForMounted(
              client,
              io,
              d.dataset_id,
              node.uuid,
              a.timeout,
              snapshot,
              a.acceptReplicaLoss || a.acceptDataLoss,
            );
            const path = await wait.catch(async (e: unknown) => {
              if (!(e instanceof CliError)) throw e;
              if (e.exitCode === EXIT.TIMEOUT)
                throw new CliError(
                  e.exitCode,
                  `${e.message}; the move goes on${whenReleased ? `, finishing${whenReleased}` : ''} (follow it: flocker volumes show ${name})`,
                  e.code,
                );
              const staysAsked = `The move stays asked for: it finishes once that is done (follow it: flocker volumes show ${name}).`;
              if (e.exitCode === EXIT.REFUSED && e.code !== 'SOURCE_UNREACHABLE')
                throw new CliError(e.exitCode, `refused on ${visible(node.host)}: ${e.message}\n${staysAsked}`, e.code);
              if (e.code !== 'SOURCE_UNREACHABLE') throw e;
              const now = await client.waitForCluster(undefined, 0);
              const advice = deadSourceAdvice(now, name, d.dataset_id, node.uuid, e.message, Date.now());
              throw new CliError(
                e.exitCode,
                e.exitCode === EXIT.REFUSED && !advice.includes('The move stays asked for')
                  ? `${advice}\n${staysAsked}`
                  : advice,
                e.code,
              );
            });
            print(
              a,
              await freshView(client, moved),
              () => `${visible(nameOf(d) || d.dataset_id)} is mounted on ${visible(node.host)} at ${path}`,
            );
          }),
        )
        .command(
          'clone <name>',
          'Create a volume holding the data of a snapshot (--snapshot) or of a volume now (--volume: snapshot first)',
          (b) =>
            waitOptions(
              b
                .positional('name', { type: 'string', demandOption: true, describe: 'Name of the new volume' })
                .option('snapshot', { type: 'string', describe: 'Snapshot name or id to clone' })
                .option('volume', { type: 'string', describe: 'Volume to clone as it is now (through a snapshot)' })
                .option('size', { type: 'string', describe: 'Size (default and minimum: the snapshot size)' })
                .option('node', { type: 'string', describe: 'Node UUID, prefix or address (default: the source node)' })
                .conflicts('snapshot', 'volume')
                .check((x) => {
                  if (x.snapshot === undefined && x.volume === undefined)
                    throw new Error('give --snapshot or --volume');
                  return true;
                })
                .example('$0 volumes clone pg-test --snapshot nightly', 'a new volume from snapshot "nightly"')
                .example('$0 volumes clone pg-copy --volume pgdata --node 10.0.0.6', 'a copy of pgdata as it is now'),
              'the clone is mounted on its node',
            ),
          run<
            GlobalArgs & {
              name: string;
              snapshot?: string;
              volume?: string;
              size?: string;
              node?: string;
              wait: boolean;
              timeout: number;
            }
          >(async (a, client) => {
            const nameProblem = newVolumeNameProblem(a.name);
            if (nameProblem !== undefined) throw new CliError(EXIT.USAGE, nameProblem);
            const [datasets, snapshot, snapshots] = await Promise.all([
              client.listDatasets(),
              client.waitForCluster(undefined, 0),
              client.listSnapshots(),
            ]);
            if (datasets.some((d) => !d.deleted && nameOf(d) === a.name))
              throw new CliError(EXIT.CONFLICT, `a volume named "${a.name}" already exists`);
            const size = a.size === undefined ? undefined : sizeArgument('--size', a.size, MINIMUM_DATASET_SIZE);
            let source: SnapshotConfiguration;
            if (a.volume !== undefined) {
              const d = resolveDataset(datasets, a.volume);
              noLocalSnapshots(snapshot, d.primary, `a clone of ${visible(nameOf(d) || d.dataset_id)}`);
              source = await client.createSnapshot({
                dataset_id: d.dataset_id,
                metadata: { 'clusterhq:flocker:clone-of': a.name },
              });
              if (!a.json) io.err(`Taking a snapshot of ${visible(nameOf(d) || d.dataset_id)} (${source.snapshot_id})`);
              await waitUntil(client, io, a.timeout, (s) => takenPhase(s, source));
            } else source = resolveSnapshot(snapshots, a.snapshot ?? '');
            const from = datasets.find((d) => d.dataset_id === source.dataset_id);
            const node = a.node
              ? resolveNode(snapshot.nodes, a.node)
              : defaultCloneNode(from?.deleted === false ? from.primary : null, snapshot.nodes);
            if (!node) throw new CliError(EXIT.FAILURE, 'no live node to create the clone on');
            // A local node's agent does not fill a clone from its snapshot (issue 24): it would be created empty.
            noLocalSnapshots(snapshot, node.uuid, `a clone on ${visible(node.host)}`);
            if (size !== undefined) {
              const beyond = beyondBackendProblem(node, size, a.name);
              if (beyond !== undefined) throw beyond;
              warn(a, overcommitWarning(node, size, a.name));
            }
            const metadata = cloneMetadata(a.name, from);
            const d = await createVolume(client, a.name, {
              primary: node.uuid,
              source_snapshot_id: source.snapshot_id,
              ...(size !== undefined ? { maximum_size: size } : {}),
              metadata,
            });
            if (!a.wait)
              return print(
                a,
                await freshView(client, d),
                () => `Cloning ${a.name} (${d.dataset_id}) on ${visible(node.host)}`,
              );
            if (!a.json)
              io.err(
                `Cloning ${a.name} from snapshot ${snapshotName(source) || source.snapshot_id} on ${visible(node.host)}`,
              );
            const path = await waitForMounted(client, io, d.dataset_id, node.uuid, a.timeout);
            // The clone holds its own copy now: the snapshot taken for it (--volume) has done its job.
            if (a.volume !== undefined) await client.deleteSnapshot(source.snapshot_id);
            print(a, await freshView(client, d), () => `${a.name} is mounted on ${visible(node.host)} at ${path}`);
          }),
        )
        .command(
          'schedule <volume> [schedule]',
          "Set, change or remove a volume's snapshot schedule (the control service takes and prunes the snapshots)",
          (b) =>
            b
              .positional('volume', { type: 'string', demandOption: true })
              .positional('schedule', { type: 'string', describe: SNAPSHOT_SCHEDULE_HELP })
              .option('keep', {
                type: 'string',
                describe: `How many scheduled snapshots to keep, 1-1000 (default ${DEFAULT_SNAPSHOT_KEEP})`,
              })
              .option('off', {
                type: 'boolean',
                default: false,
                describe: 'Remove the schedule (snapshots already taken stay)',
              })
              .example('$0 volumes schedule pgdata hourly --keep 48', '')
              .example('$0 volumes schedule pgdata --keep 12', 'change only how many are kept')
              .example('$0 volumes schedule pgdata --off', ''),
          run<GlobalArgs & { volume: string; schedule?: string; keep?: string; off: boolean }>(async (a, client) => {
            const d = resolveDataset(await client.listDatasets(), a.volume);
            const name = visible(nameOf(d) || d.dataset_id); // text only
            let patch: Record<string, string | null>;
            if (a.off) {
              if (a.schedule !== undefined || a.keep !== undefined)
                throw new CliError(EXIT.USAGE, '--off takes no schedule and no --keep');
              patch = { [METADATA_SNAPSHOT_SCHEDULE_KEY]: null, [METADATA_SNAPSHOT_KEEP_KEY]: null };
            } else if (a.schedule === undefined) {
              if (a.keep === undefined) throw new CliError(EXIT.USAGE, 'give a schedule, --keep N or --off');
              if (d.metadata[METADATA_SNAPSHOT_SCHEDULE_KEY] === undefined)
                throw new CliError(EXIT.USAGE, `${name} has no snapshot schedule: give one with --keep`);
              patch = scheduleMetadata(d.metadata[METADATA_SNAPSHOT_SCHEDULE_KEY], a.keep);
            } else patch = scheduleMetadata(a.schedule, a.keep);
            if (!a.off)
              noLocalSnapshots(await client.waitForCluster(undefined, 0), d.primary, `a schedule for ${name}`);
            const updated = await client.updateDataset(d.dataset_id, { metadata: patch });
            const now = Date.now();
            const schedule = volumeSchedule(updated, await client.listSnapshots(), now);
            print(a, { ...(await freshView(client, updated)), snapshot_schedule: schedule }, () =>
              schedule
                ? `${name}: ${schedule.schedule}, keep ${schedule.keep}; next snapshot ${nextSnapshotText(schedule.next_due, now)}`
                : `${name}: no snapshot schedule`,
            );
          }),
        )
        .command(
          'resize <volume> <size>',
          'Grow a volume (never shrink it) and wait until its node has grown it',
          (b) =>
            waitOptions(
              b
                .positional('volume', { type: 'string', demandOption: true })
                .positional('size', { type: 'string', demandOption: true, describe: 'New size, e.g. 20G, 512MiB' })
                .example('$0 volumes resize pgdata 20G', 'online where the file system can grow mounted')
                .example('$0 volumes resize pgdata 20G --no-wait', 'return once the new size is recorded'),
              'its node reports the volume at the new size',
            ),
          run<GlobalArgs & { volume: string; size: string; wait: boolean; timeout: number }>(async (a, client) => {
            const d = resolveDataset(await client.listDatasets(), a.volume);
            const size = sizeArgument('size', a.size, MINIMUM_DATASET_SIZE);
            const current = d.maximum_size ?? 0;
            const name = visible(nameOf(d) || d.dataset_id); // text only
            const on = (await client.waitForCluster(undefined, 0)).nodes.find((n) => n.uuid === d.primary);
            if (on !== undefined && size > current) {
              const beyond = beyondBackendProblem(on, size, `${name} grown`);
              if (beyond !== undefined) throw beyond;
              warn(a, overcommitWarning(on, size - current, `growing ${name}`));
            }
            if (current > 0 && size < current)
              throw new CliError(
                EXIT.USAGE,
                `${name} is ${formatSize(current)}; volumes do not shrink (asked for ${formatSize(size)})`,
              );
            const already = size === current;
            const grown = already ? d : await client.updateDataset(d.dataset_id, { maximum_size: size });
            const asked = already
              ? `${name} is already ${formatSize(size)}`
              : `Resizing ${name} to ${formatSize(size)}`;
            if (!a.wait) return print(a, await freshView(client, grown), () => asked);
            if (!a.json)
              io.err(already ? asked : `Resizing ${name} from ${formatSize(current)} to ${formatSize(size)}`);
            const done = await waitUntil(client, io, a.timeout, (s) => resizePhase(s, d.dataset_id, size));
            // A grow that waits until the volume is unused (TN F3): exit 0, but never "is N" before it is.
            const pending =
              done.pending !== undefined
                ? growPendingText(await client.waitForCluster(undefined, 0), d.dataset_id)
                : '';
            print(a, await freshView(client, grown), () =>
              pending !== ''
                ? `${name}: ${formatSize(size)} on ${visible(done.host)}, ${pending}`
                : `${name} is ${formatSize(done.size)} on ${visible(done.host)}`,
            );
          }),
        )
        .command(
          ['destroy <volume>', 'rm <volume>'],
          'Delete a volume and its data',
          (b) =>
            waitOptions(
              b
                .positional('volume', { type: 'string', demandOption: true })
                .option('force', {
                  type: 'boolean',
                  default: false,
                  describe:
                    'Also when a live node holds its lease (a container there uses it, or "flocker leases acquire" ' +
                    'took it): release the lease, then destroy',
                })
                .example(
                  '$0 volumes destroy pgdata',
                  'refused while a live node holds its lease (a container there uses it, or "flocker leases acquire" took it)',
                ),
              'the volume is gone from every node (unmounted, its storage deleted)',
            ),
          run<GlobalArgs & { volume: string; wait: boolean; timeout: number; force: boolean }>(async (a, client) => {
            const [datasets, snapshot, leases] = await Promise.all([
              client.listDatasets(),
              client.waitForCluster(undefined, 0),
              client.listLeases(),
            ]);
            // Destroying again a volume still being deleted just waits (and says why it is stuck).
            const d = resolveDataset(datasets, a.volume, { includeDeleted: (x) => isDeleting(snapshot, x) });
            const u = inUseBy(snapshot.nodes, leases, d.dataset_id);
            const warning = checkInUse('destroy', nameOf(d) || d.dataset_id, u, a.force);
            warn(a, inUseWarning(warning));
            // A lease its holder lets go of on request (session 21): the delete asks it first, also when forced; only
            // a holder that kept it (a container there uses it, or no answer) is judged, and forced, released.
            const asks = u?.lease.release_on_request === true;
            if (a.force && !asks && leases.some((l) => l.dataset_id === d.dataset_id))
              await client.releaseLease(d.dataset_id);
            const deleted = await client.deleteDataset(d.dataset_id).catch(async (e: unknown) => {
              if (u === undefined || !asks || !(e instanceof FlockerApiError && e.code === 'LEASE_HELD')) throw e;
              warn(a, inUseWarning(destroyAfterAsking(nameOf(d) || d.dataset_id, u, e.description, a.force)));
              await client.releaseLease(d.dataset_id).catch((gone: unknown) => {
                if (!(gone instanceof FlockerApiError && gone.status === 404)) throw gone;
              });
              return client.deleteDataset(d.dataset_id);
            });
            if (a.wait) {
              if (!a.json) io.err(`Destroying ${visible(nameOf(d) || d.dataset_id)}`);
              await waitUntil(client, io, a.timeout, (s) => destroyProgress(s, d.dataset_id));
            }
            // --no-wait: only recorded (s26 USER-W: "Destroyed" while the volume was still listed).
            const name = visible(nameOf(d) || d.dataset_id);
            print(a, await freshView(client, deleted), () =>
              a.wait
                ? `Destroyed ${name}`
                : `Deleting ${name}: recorded; its node unmounts and destroys it (flocker volumes list shows it until then)`,
            );
          }),
        )
        .demandCommand(1, 'Name a volumes command: list, create, show, move, clone, schedule, resize or destroy'),
    )
    .command('snapshots', 'Take, list, show and destroy snapshots of volumes', (sn) =>
      sn
        .command(
          'create <volume>',
          'Take a crash-consistent snapshot of a volume (frozen for the instant it is taken)',
          (b) =>
            waitOptions(
              b
                .positional('volume', { type: 'string', demandOption: true })
                .option('name', {
                  type: 'string',
                  describe: 'Name of the snapshot (unique among live snapshots, not shaped like an id)',
                })
                .example('$0 snapshots create pgdata --name nightly', 'waits until the backend holds it'),
              'a storage backend holds the snapshot',
            ),
          run<GlobalArgs & { volume: string; name?: string; wait: boolean; timeout: number }>(async (a, client) => {
            const nameProblem = a.name === undefined ? undefined : newSnapshotNameProblem(a.name);
            if (nameProblem !== undefined) throw new CliError(EXIT.USAGE, nameProblem);
            const [datasets, cluster] = await Promise.all([client.listDatasets(), client.waitForCluster(undefined, 0)]);
            const d = resolveDataset(datasets, a.volume);
            noLocalSnapshots(cluster, d.primary, `a snapshot of ${visible(nameOf(d) || d.dataset_id)}`);
            const s = await client.createSnapshot({
              dataset_id: d.dataset_id,
              ...(a.name !== undefined ? { metadata: { name: a.name } } : {}),
            });
            const label = a.name ?? s.snapshot_id;
            if (!a.wait)
              return print(a, s, () => `Snapshot ${label} of ${visible(nameOf(d) || d.dataset_id)} requested`);
            if (!a.json) io.err(`Taking snapshot ${label} of ${visible(nameOf(d) || d.dataset_id)}`);
            const held = await waitUntil(client, io, a.timeout, (c) => takenPhase(c, s));
            print(a, { ...s, state: held }, () => `Snapshot ${label} taken at ${held.created_at} (${held.status})`);
          }),
        )
        .command(
          ['list', 'ls'],
          'List snapshots',
          (b) =>
            watchOptions(
              b
                .option('volume', { type: 'string', describe: 'Only the snapshots of this volume' })
                .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Only snapshot ids' }),
            )
              .example(
                '$0 snapshots list',
                'NAME SNAPSHOT VOLUME SIZE TAKEN STATE SCHEDULED (the schedule, or - for manual)',
              )
              .example('$0 snapshots list --watch', 'follow snapshots from requested to ready until Ctrl-C'),
          run<GlobalArgs & { volume?: string; quiet: boolean; watch: boolean; timeout?: number }>(async (a, client) => {
            const datasets = await client.listDatasets();
            const only = a.volume === undefined ? undefined : resolveDataset(datasets, a.volume).dataset_id;
            const rowsOf = async (cluster: ClusterSnapshot) =>
              (await client.listSnapshots())
                .filter((s) => only === undefined || s.dataset_id === only)
                .map((s) => ({ ...snapshotRow(s, cluster.datasets, cluster), scheduled: scheduledBy(s) }));
            await listOrWatch(a, client, rowsOf, (rows) =>
              renderList(a, rows, {
                headers: ['NAME', 'SNAPSHOT', 'VOLUME', 'SIZE', 'TAKEN', 'STATE', 'SCHEDULED'],
                cells: (r) => [
                  r.name || '-',
                  shortId(r.snapshot_id),
                  r.source_deleted ? `${r.volume} (deleted)` : r.volume,
                  r.size !== null ? formatSize(r.size) : '-',
                  r.taken_at ?? '-',
                  r.state,
                  r.scheduled ?? '-',
                ],
                name: (r) => r.name || r.snapshot_id,
                id: (r) => r.snapshot_id,
              }),
            );
          }),
        )
        .command(
          'show <snapshot>',
          'Show one snapshot (by name or id)',
          (b) => b.positional('snapshot', { type: 'string', demandOption: true }),
          run<GlobalArgs & { snapshot: string }>(async (a, client) => {
            const [datasets, cluster, snapshots] = await Promise.all([
              client.listDatasets(),
              client.waitForCluster(undefined, 0),
              client.listSnapshots(),
            ]);
            const s = resolveSnapshot(snapshots, a.snapshot);
            const r = { ...snapshotRow(s, datasets, cluster), scheduled: scheduledBy(s) };
            print(a, r, () =>
              [
                `Name:       ${r.name || '-'}`,
                `Snapshot:   ${r.snapshot_id}`,
                `Volume:     ${r.volume}${r.source_deleted ? ' (deleted)' : ''} (${r.dataset_id})`,
                `Size:       ${r.size !== null ? formatSize(r.size) : '-'}`,
                `Requested:  ${r.created_at}`,
                `Taken:      ${r.taken_at ?? '-'}`,
                `State:      ${r.state}${r.reason !== null ? ` — ${r.reason}` : ''}`,
                `Scheduled:  ${r.scheduled ?? 'no (taken by hand)'}`,
              ]
                .map(visible)
                .join('\n'),
            );
          }),
        )
        .command(
          ['destroy <snapshot>', 'rm <snapshot>'],
          'Delete a snapshot (volumes cloned from it are not affected)',
          (b) =>
            waitOptions(
              b.positional('snapshot', { type: 'string', demandOption: true }),
              'no storage backend holds the snapshot any more',
            ),
          run<GlobalArgs & { snapshot: string; wait: boolean; timeout: number }>(async (a, client) => {
            const s = resolveSnapshot(await client.listSnapshots(), a.snapshot);
            const deleted = await client.deleteSnapshot(s.snapshot_id);
            const label = visible(snapshotName(s) || s.snapshot_id);
            if (a.wait) {
              if (!a.json) io.err(`Destroying snapshot ${label}`);
              await waitUntil(client, io, a.timeout, (c) => destroyedPhase(c, s));
            }
            print(a, deleted, () =>
              a.wait
                ? `Destroyed snapshot ${label}`
                : `Deleting snapshot ${label}: recorded; its storage backend destroys it`,
            );
          }),
        )
        .demandCommand(1, 'Name a snapshots command: create, list, show or destroy'),
    )
    .command('backup', 'Back volumes up to S3-compatible object storage; list, verify, restore, delete backups', (bk) =>
      bk
        .option('endpoint', {
          type: 'string',
          describe:
            'S3 endpoint for list, verify, restore, delete and gc [env AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL; default AWS]',
        })
        .option('region', { type: 'string', describe: 'S3 region [env AWS_REGION]' })
        .command(
          'create <volume>',
          "Back a volume up: a frozen snapshot, streamed by its node's agent (incremental after the first)",
          (b) =>
            waitOptions(
              b
                .positional('volume', { type: 'string', demandOption: true })
                .option('to', { type: 'string', demandOption: true, describe: 'Target, s3://bucket/prefix' })
                .option('keep', {
                  type: 'number',
                  describe: "Then keep only the newest N of the volume's backups there",
                })
                .example('$0 backup create pgdata --to s3://backups/prod --keep 7', 'waits until it is stored'),
              'the backup is stored',
            ),
          run<GlobalArgs & { volume: string; to: string; keep?: number; wait: boolean; timeout: number }>(
            async (a, client) => {
              if (a.keep !== undefined && (!Number.isInteger(a.keep) || a.keep < 1))
                throw new CliError(EXIT.USAGE, '--keep must be a whole number of at least 1');
              const [datasets, cluster] = await Promise.all([
                client.listDatasets(),
                client.waitForCluster(undefined, 0),
              ]);
              const d = resolveDataset(datasets, a.volume);
              const label = visible(nameOf(d) || d.dataset_id);
              noLocalSnapshots(cluster, d.primary, `a backup of ${label}`);
              const req = await client.createBackup({
                dataset_id: d.dataset_id,
                target: a.to,
                ...(a.keep !== undefined ? { keep: a.keep } : {}),
              });
              if (!a.wait) return print(a, req, () => `Backup ${req.backup_id} of ${label} to ${a.to} requested`);
              if (!a.json) io.err(`Backing ${label} up to ${a.to}`);
              const done = await waitUntil(client, io, a.timeout, (c) => backupPhase(c, req.backup_id, d.dataset_id));
              print(a, { ...req, state: done }, () =>
                [
                  `Backup ${done.stored_backup_id ?? req.backup_id} of ${label} stored in ${a.to}`,
                  `  ${formatSize(done.data_bytes ?? 0)} of data, ${formatSize(done.uploaded_bytes ?? 0)} uploaded`,
                ]
                  .map(visible)
                  .join('\n'),
              );
            },
          ),
        )
        .command(
          ['list', 'ls'],
          'List the backups in a target (read from the store itself, so it works without the control service), newest first',
          (b) =>
            b
              .option('from', { type: 'string', demandOption: true, describe: 'Target, s3://bucket/prefix' })
              .option('volume', {
                type: 'string',
                describe: 'Only the backups of this volume (name or dataset id; a name needs the control service)',
              }),
          run<GlobalArgs & { from: string; volume?: string; endpoint?: string; region?: string }>(async (a, client) => {
            const store = s3Store(a.from, a, process.env);
            // Names are a courtesy: in a disaster (control service gone) the store still says what backups exist.
            const asDatasetId = a.volume !== undefined && isDatasetId(a.volume) ? a.volume.toLowerCase() : undefined;
            const datasets = await client.listDatasets().catch((e: unknown) => {
              if (a.volume !== undefined && asDatasetId === undefined)
                throw new CliError(
                  EXIT.UNREACHABLE,
                  `cannot look the volume name "${a.volume}" up without the control service (${errorMessage(e)}): give its dataset id`,
                );
              warn(a, {
                code: 'NAMES_UNAVAILABLE',
                message: `volume names not shown: the control service did not answer (${errorMessage(e)})`,
              });
              return undefined;
            });
            const only = a.volume === undefined ? undefined : backupsVolumeId(datasets, a.volume);
            const found = await listBackups(store, only).catch((e: unknown) => {
              throw backupCliError(e) ?? e;
            });
            const rows = found.map((s) => {
              const d = datasets?.find((x) => x.dataset_id === s.volumeId);
              return {
                backup_id: s.backupId,
                volume: d !== undefined ? nameOf(d) || s.volumeId : s.volumeId,
                dataset_id: s.volumeId,
                created_at: s.createdAt,
                size: s.manifest?.size ?? null,
                data_bytes: s.manifest?.stats.dataBytes ?? null,
                uploaded_bytes: s.manifest?.stats.uploadedBytes ?? null,
                ...(s.problem !== undefined ? { problem: s.problem } : {}),
              };
            });
            print(a, rows, () =>
              table(
                ['BACKUP', 'VOLUME', 'TAKEN', 'SIZE', 'DATA', 'UPLOADED'],
                rows.map((r) => [
                  r.backup_id,
                  r.volume,
                  r.created_at,
                  r.size !== null ? formatSize(r.size) : `unreadable: ${r.problem?.code ?? '?'}`,
                  r.data_bytes !== null ? formatSize(r.data_bytes) : '-',
                  r.uploaded_bytes !== null ? formatSize(r.uploaded_bytes) : '-',
                ]),
              ),
            );
          }),
        )
        .command(
          'restore <backup>',
          'Restore a backup into a new volume on a node (mounted only once every chunk verified)',
          (b) =>
            waitOptions(
              b
                .positional('backup', { type: 'string', demandOption: true, describe: 'Backup id (see backup list)' })
                .option('from', { type: 'string', demandOption: true, describe: 'Target, s3://bucket/prefix' })
                .option('name', { type: 'string', demandOption: true, describe: 'Name of the new volume' })
                .option('node', {
                  type: 'string',
                  describe: 'Node UUID, UUID prefix or address (default: the only node)',
                })
                .option('size', { type: 'string', describe: "Size of the new volume (default: the backup's)" })
                .example('$0 backup restore <id> --from s3://backups/prod --name pgdata-restored', ''),
              'the restored volume is mounted',
            ),
          run<
            GlobalArgs & {
              backup: string;
              from: string;
              name: string;
              node?: string;
              size?: string;
              endpoint?: string;
              region?: string;
              wait: boolean;
              timeout: number;
            }
          >(async (a, client) => {
            const nameProblem = newVolumeNameProblem(a.name);
            if (nameProblem !== undefined) throw new CliError(EXIT.USAGE, nameProblem);
            const asked = a.size !== undefined ? sizeArgument('--size', a.size, MINIMUM_DATASET_SIZE) : undefined;
            const [datasets, snapshot] = await Promise.all([
              client.listDatasets(),
              client.waitForCluster(undefined, 0),
            ]);
            if (datasets.some((d) => !d.deleted && nameOf(d) === a.name))
              throw new CliError(EXIT.CONFLICT, `a volume named "${a.name}" already exists`);
            let node: NodeState;
            if (a.node) node = resolveNode(snapshot.nodes, a.node);
            else {
              const alive = snapshot.nodes.filter((n) => n.alive);
              if (alive.length !== 1 || !alive[0])
                throw new CliError(EXIT.USAGE, `there are ${alive.length} live nodes: choose one with --node`);
              node = alive[0];
            }
            // A local node's agent does not fill a volume from a backup (issue 24): it would be created empty.
            noLocalSnapshots(snapshot, node.uuid, `a restore on ${visible(node.host)}`);
            const manifest = await readManifest(s3Store(a.from, a, process.env), a.backup).catch((e: unknown) => {
              throw backupCliError(e) ?? e;
            });
            const size = restoreSize(manifest.size, asked);
            const d = await createVolume(client, a.name, {
              primary: node.uuid,
              maximum_size: size,
              metadata: {},
              source_backup: { target: a.from, backup_id: manifest.backupId },
            });
            if (!a.wait) return print(a, d, () => `Restoring ${a.name} (${d.dataset_id}) on ${visible(node.host)}`);
            if (!a.json)
              io.err(`Restoring ${manifest.backupId} into ${a.name} (${formatSize(size)}) on ${visible(node.host)}`);
            const path = await waitUntil(client, io, a.timeout, (c) => restorePhase(c, d.dataset_id, node.uuid));
            print(a, { ...d, path }, () => `${a.name} is restored and mounted on ${visible(node.host)} at ${path}`);
          }),
        )
        .command(
          'verify <backup>',
          'Read every chunk of a backup back from the target and check it, as a restore would (writes nothing)',
          (b) =>
            b
              .positional('backup', { type: 'string', demandOption: true, describe: 'Backup id (see backup list)' })
              .option('from', { type: 'string', demandOption: true, describe: 'Target, s3://bucket/prefix' })
              .epilog(
                'Exit 0: every chunk restores. Exit 1: the chunks listed are missing or damaged in the store; the ' +
                  'next backup of the volume stores them again if the volume still holds that data (it checks the ' +
                  'size and checksum of every chunk it reuses), which repairs every backup needing them.',
              ),
          run<GlobalArgs & { backup: string; from: string; endpoint?: string; region?: string }>(async (a) => {
            const r = await verifyBackup(s3Store(a.from, a, process.env), a.backup).catch((e: unknown) => {
              throw backupCliError(e) ?? e;
            });
            const out = {
              backup_id: r.manifest.backupId,
              chunks_checked: r.chunksChecked,
              bytes_read: r.bytesRead,
              problems: r.problems,
            };
            print(a, out, () =>
              r.problems.length === 0
                ? visible(
                    `Backup ${r.manifest.backupId} verified: ${r.chunksChecked} chunks (${formatSize(r.bytesRead)} read) restore`,
                  )
                : // One line each: a manifest's id or a store's error message is the store's text.
                  [
                    `Backup ${r.manifest.backupId} cannot be restored: ${r.problems.length} object(s) missing or damaged in ${a.from}`,
                    ...r.problems.map((p) => `  chunk ${p.index}: ${p.code} ${p.message}`),
                  ]
                    .map(visible)
                    .join('\n'),
            );
            if (r.problems.length > 0) process.exitCode = EXIT.FAILURE;
          }),
        )
        .command(
          ['delete <backup>', 'rm <backup>'],
          'Delete a backup from a target (its chunks stay until "backup gc", or a "backup create --keep", collects them)',
          (b) =>
            b
              .positional('backup', { type: 'string', demandOption: true })
              .option('from', { type: 'string', demandOption: true, describe: 'Target, s3://bucket/prefix' }),
          run<GlobalArgs & { backup: string; from: string; endpoint?: string; region?: string }>(async (a) => {
            await deleteBackup(s3Store(a.from, a, process.env), a.backup).catch((e: unknown) => {
              throw backupCliError(e) ?? e;
            });
            print(a, { deleted: a.backup }, () => `Deleted backup ${a.backup} from ${a.from}`);
          }),
        )
        .command(
          'gc',
          'Delete the chunks in a target that no backup (of any volume) needs any more and older than the grace period',
          (b) =>
            b
              .option('from', { type: 'string', demandOption: true, describe: 'Target, s3://bucket/prefix' })
              .option('grace-hours', {
                type: 'number',
                default: 24,
                describe: 'Never delete a chunk younger than this (a backup may have just uploaded it)',
              })
              .epilog(
                'Safe while backups run: a running backup keeps a marker that defers the collection. ' +
                  "Ages are judged on the store's clock (it writes clock/gc to read it), not this host's. " +
                  'A manifest that cannot be read stops it (its chunks cannot be told apart): delete that backup first.',
              ),
          run<GlobalArgs & { from: string; graceHours: number; endpoint?: string; region?: string }>(async (a) => {
            if (!Number.isFinite(a.graceHours) || a.graceHours < 0)
              throw new CliError(EXIT.USAGE, '--grace-hours must be a number of hours, 0 or more');
            const r = await collectGarbage(s3Store(a.from, a, process.env), {
              graceMs: a.graceHours * 3600_000,
            }).catch((e: unknown) => {
              throw backupCliError(e) ?? e;
            });
            print(a, r, () =>
              r.deferred
                ? `A backup is running in ${a.from}: ${r.deletedChunks} chunks deleted before it started; run again later`
                : `Deleted ${r.deletedChunks} chunks (${formatSize(r.deletedBytes)}) from ${a.from}; ` +
                  `${r.referencedChunks} in use, ${r.youngChunks} unused but younger than ${a.graceHours} h kept`,
            );
          }),
        )
        .demandCommand(1, 'Name a backup command: create, list, verify, restore, delete or gc'),
    )
    .command('nodes', 'List nodes (same as flocker nodes list), forget a retired one', (n) =>
      n
        .command(
          'forget <node>',
          'Forget a retired node (by host or UUID): no longer shown dead, nor after a control service restart',
          (b) =>
            b
              .positional('node', { type: 'string', demandOption: true, describe: 'Its host (address) or UUID' })
              .example('$0 nodes forget 10.0.0.5', 'a host retired for good: its agents stopped, nothing on it')
              .epilogue(
                'Refused (exit 4) while the node reports, is the primary of a volume, holds a lease or runs a configured container: each thing to do first is listed. Unknown or already forgotten: exit 3. API user certificates only.',
              ),
          run<GlobalArgs & { node: string }>(async (a, client) => {
            const forgotten = await forgetNode(client, a.node);
            print(a, forgotten, () => forgottenText(forgotten));
          }),
        )
        .command(
          // The default nodes command: `flocker nodes` alone lists them (the help above says "List nodes").
          ['list', 'ls', '$0'],
          'List the nodes that have reported',
          (b) =>
            watchOptions(
              b.option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Only node UUIDs' }),
            )
              .example('$0 nodes list', 'NODE HOST ALIVE LAST SEEN BACKEND VOLUMES ERRORS')
              .example('$0 nodes list -o name', 'one address a line')
              .example('$0 nodes list --watch', 'print again when a node joins, dies or comes back'),
          run<GlobalArgs & { quiet: boolean; watch: boolean; timeout?: number }>(async (a, client) => {
            const render = (nodes: readonly NodeState[]) =>
              renderList(a, nodes, {
                headers: ['NODE', 'HOST', 'ALIVE', 'LAST SEEN', 'BACKEND', 'VOLUMES', 'ERRORS'],
                cells: (x) => [
                  shortId(x.uuid),
                  x.host,
                  x.alive ? 'yes' : 'NO',
                  relativeTime(new Date(x.last_seen)),
                  x.backend,
                  String(x.manifestations.length),
                  String(x.errors.length),
                ],
                wideHeaders: ['UUID', 'INSTANCE', 'ZONE', 'VERSION'],
                wideCells: (x) => [x.uuid, x.instance_id ?? '-', x.zone ?? '-', x.version ?? '-'],
                name: (x) => x.host,
                id: (x) => x.uuid,
              });
            // Every report moves last_seen (and the free capacity): a change is what the columns say otherwise.
            const key = (nodes: readonly NodeState[]) =>
              nodes.map((x) => [
                x.uuid,
                x.host,
                x.alive,
                x.backend,
                x.manifestations.length,
                x.errors.length,
                x.version,
              ]);
            await listOrWatch(a, client, async (s) => Promise.resolve(s.nodes), render, { key });
          }),
        ),
    )
    .command('leases', 'List, acquire and release leases', (l) =>
      l
        .command(
          ['list', 'ls'],
          'List leases',
          (b) =>
            watchOptions(
              b.option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Only dataset ids' }),
            )
              .example('$0 leases list', 'NODE is the host; -o wide or --json add its UUID')
              .example('$0 leases list --watch', 'print again when a lease is acquired, renewed or released'),
          run<GlobalArgs & { quiet: boolean; watch: boolean; timeout?: number }>(async (a, client) => {
            // The snapshot holds the leases with the configuration and the nodes.
            const rowsOf = async (snapshot: ClusterSnapshot) =>
              Promise.resolve(
                snapshot.leases
                  .map((x) => leaseView(x, snapshot.datasets, snapshot.nodes))
                  .sort((x, y) => x.name.localeCompare(y.name) || x.dataset_id.localeCompare(y.dataset_id)),
              );
            await listOrWatch(a, client, rowsOf, (rows) =>
              renderList(a, rows, {
                headers: ['VOLUME', 'DATASET', 'NODE', 'EXPIRES', 'PINNED', 'HOLDERS'],
                cells: (x) => [
                  x.name || '-',
                  shortId(x.dataset_id),
                  x.node,
                  duration(x.expires),
                  x.pinned ? 'yes' : 'no',
                  leaseHoldersText(x),
                ],
                wideHeaders: ['NODE UUID'],
                wideCells: (x) => [x.node_uuid],
                name: (x) => x.name || x.dataset_id,
                id: (x) => x.dataset_id,
              }),
            );
          }),
        )
        .command(
          'acquire <volume>',
          'Pin a volume to a node (it cannot be moved or deleted while leased)',
          (b) =>
            b
              .positional('volume', { type: 'string', demandOption: true })
              .example('$0 leases acquire pgdata --expires 3600', 'pin it to its node for an hour')
              .option('node', { type: 'string', describe: "Node (default: the volume's primary)" })
              .option('expires', { type: 'number', describe: 'Seconds until the lease expires (default: never)' })
              .option('pinned', {
                type: 'boolean',
                describe:
                  'Keep the lease even when its node is declared dead (manual failover; API users only). Without the flag a renewal keeps what the lease had',
              })
              .example(
                '$0 leases acquire pgdata --pinned',
                'the control service will not release it when the node dies',
              ),
          run<GlobalArgs & { volume: string; node?: string; expires?: number; pinned?: boolean }>(async (a, client) => {
            const [datasets, snapshot] = await Promise.all([
              client.listDatasets(),
              client.waitForCluster(undefined, 0),
            ]);
            const d = resolveDataset(datasets, a.volume);
            const nodeUuid = a.node ? resolveNode(snapshot.nodes, a.node).uuid : d.primary;
            if (a.expires !== undefined && !(a.expires > 0))
              throw new CliError(EXIT.USAGE, '--expires must be a positive number of seconds');
            const lease = await client.acquireLease({
              dataset_id: d.dataset_id,
              node_uuid: nodeUuid,
              expires: a.expires ?? null,
              ...(a.pinned !== undefined ? { pinned: a.pinned } : {}),
            });
            print(
              a,
              lease,
              () =>
                // The node's host, as leases list and every other command print it (its UUID stays in --json).
                `Leased ${visible(nameOf(d) || d.dataset_id)} to ${visible(leaseView(lease, datasets, snapshot.nodes).node)} (expires ${duration(lease.expires)}${lease.pinned ? ', pinned' : ''})`,
            );
          }),
        )
        .command(
          'release <volume>',
          'Release the lease on a volume',
          (b) =>
            b
              .positional('volume', { type: 'string', demandOption: true })
              .option('force', {
                type: 'boolean',
                default: false,
                describe:
                  'Also when its holder is a live node (a container there uses the volume, or "flocker leases acquire" ' +
                  'took it: a lease you took yourself needs --force too)',
              })
              .example(
                '$0 leases release pgdata',
                'the volume may move again; refused while a live node holds it (a container there uses it, or "flocker leases acquire" took it)',
              ),
          run<GlobalArgs & { volume: string; force: boolean }>(async (a, client) => {
            const [datasets, snapshot, leases] = await Promise.all([
              client.listDatasets(),
              client.waitForCluster(undefined, 0),
              client.listLeases(),
            ]);
            const d = resolveDataset(datasets, a.volume);
            const warning = checkInUse(
              'release',
              nameOf(d) || d.dataset_id,
              inUseBy(snapshot.nodes, leases, d.dataset_id),
              a.force,
            );
            warn(a, inUseWarning(warning));
            const lease = await client.releaseLease(d.dataset_id);
            print(a, lease, () => `Released the lease on ${visible(nameOf(d) || d.dataset_id)}`);
          }),
        )
        .demandCommand(1, 'Name a leases command: list, acquire or release'),
    )
    .command(
      'events',
      'The live feed of the cluster (as the web UI shows it): created, moving, mounted, failed with the reason, node lost/back, leases, snapshots',
      (b) =>
        b
          .option('since', {
            type: 'string',
            describe:
              "First the control service's stored events since then (node lost/back, leases released by failover, moves cancelled): 10m, 2h, 1d or an ISO time",
          })
          .option('timeout', { type: 'number', describe: 'Stop after this many seconds (default: until Ctrl-C)' })
          .example('$0 events', 'follow until Ctrl-C')
          .example('$0 events --since 1h --json', 'one JSON object a line'),
      run<GlobalArgs & { since?: string; timeout?: number }>(async (a, client) => {
        const show = (e: FeedEvent) => io.out(a.json ? JSON.stringify(e) : feedLine(e));
        if (a.since !== undefined) {
          const since = parseSince(a.since, new Date());
          const stored = await client.listEvents().catch((e: unknown): ClusterEvent[] => {
            if (e instanceof FlockerApiError && e.status === 404) return [];
            throw e;
          });
          storedEventsSince(stored, since).forEach(show);
        }
        let prev: ClusterSnapshot | undefined;
        await follow(client, a.timeout, (next) => {
          if (prev?.generation !== next.generation)
            stamped(diffSnapshots(prev, next), new Date().toISOString()).forEach(show);
          prev = next;
        });
      }),
    )
    .command(
      'version',
      'The versions of this client and of the control service (--client or flocker --version: only this client)',
      (b) =>
        b
          .option('client', {
            type: 'boolean',
            default: false,
            describe: "Only this client's version (the control service is not asked)",
          })
          .example('$0 version --json', '{"client": …, "server": …}'),
      run<GlobalArgs & { client: boolean }>(async (a, client) => {
        if (a.client) return print(a, { client: clientVersion() }, () => `Client:  ${clientVersion()}`);
        // The client's version is printed even when the control service does not answer.
        let server: { flocker: string | null; error: string | null };
        let exit: number = EXIT.OK;
        let nodes: Versions['nodes'];
        try {
          server = { flocker: (await client.version()).flocker, error: null };
          // The releases to compare with this client's (a control service before the field reports none).
          nodes = await Promise.resolve()
            .then(() => client.listNodes())
            .then(nodeReleases, () => undefined);
        } catch (e) {
          const err = await toCliError(e, a);
          if (err === undefined) throw e;
          server = { flocker: null, error: err.message };
          exit = err.exitCode;
        }
        const v: Versions = { client: clientVersion(), server, ...(nodes !== undefined ? { nodes } : {}) };
        print(a, v, () => versionText(v));
        if (exit !== EXIT.OK) process.exitCode = exit;
      }),
    )
    .command('describe', 'Everything known about one object', (c) =>
      c
        .command(
          'volume <volume>',
          'Configuration, what every node has of it, lease and holders, snapshots, the last error and its reason, events',
          (b) =>
            b.positional('volume', { type: 'string', demandOption: true }).example('$0 describe volume pgdata', ''),
          run<GlobalArgs & { volume: string }>(async (a, client) => {
            const [datasets, snapshot, leases, snapshots, events] = await Promise.all([
              client.listDatasets(),
              client.waitForCluster(undefined, 0),
              client.listLeases(),
              client.listSnapshots(),
              client.listEvents().catch((e: unknown): ClusterEvent[] => {
                if (e instanceof FlockerApiError && e.status === 404) return [];
                throw e;
              }),
            ]);
            const d = resolveDataset(datasets, a.volume, { includeDeleted: (x) => isDeleting(snapshot, x) });
            const x = describeVolume(snapshot, d, leases, snapshots, events);
            print(a, x, () => describeText(x));
          }),
        )
        .demandCommand(1, 'Name what to describe: volume'),
    )
    .command('containers', 'What flocker-deploy placed: configured containers and their state (alone: list)', (c) =>
      c
        .command(
          // The default: `flocker containers` alone lists them, as `flocker nodes` does (review TN F9).
          ['list', 'ls', '$0'],
          'List containers: NAME IMAGE NODE STATE VOLUME ERROR',
          (b) =>
            watchOptions(b.option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Only names' }))
              .example('$0 containers list', 'a container the agent cannot start says why in ERROR')
              .example('$0 containers list --watch', 'print again when a container starts, stops or fails'),
          run<GlobalArgs & { quiet: boolean; watch: boolean; timeout?: number }>(async (a, client) => {
            const rowsOf = async (snapshot: ClusterSnapshot) => {
              const [configured, reported] = await Promise.all([client.listContainers(), client.listContainerState()]);
              return containerViews(configured, reported, snapshot.nodes, snapshot.datasets);
            };
            // The container agents' reports are no cluster change: with --watch they are asked every 2 s too.
            await listOrWatch(
              a,
              client,
              rowsOf,
              (rows) =>
                renderList(a, rows, {
                  headers: ['NAME', 'IMAGE', 'NODE', 'STATE', 'VOLUME', 'ERROR'],
                  cells: (r) => [
                    r.name,
                    r.image,
                    r.reported_node !== null ? `${r.node} (on ${r.reported_node})` : r.node,
                    r.state,
                    r.volume ?? '-',
                    // Unknown because its container agent is silent: that is the news, not its last report's error.
                    r.state === 'unknown' && r.silent_agent !== null
                      ? agentSilenceText(r.silent_agent)
                      : r.error
                        ? `${r.error.code}: ${r.error.message}`
                        : '',
                  ],
                  wideHeaders: ['NODE UUID', 'PORTS', 'RESTART'],
                  wideCells: (r) => [
                    r.node_uuid,
                    r.ports.map((p) => `${p.external}->${p.internal}`).join(',') || '-',
                    r.restart_policy.name,
                  ],
                  name: (r) => r.name,
                  id: (r) => r.name,
                }),
              { refreshMs: 2000 },
            );
          }),
        )
        .command(
          'show <container>',
          'Show one container',
          (b) => b.positional('container', { type: 'string', demandOption: true }),
          run<GlobalArgs & { container: string }>(async (a, client) => {
            const [configured, reported, snapshot, datasets] = await Promise.all([
              client.listContainers(),
              client.listContainerState(),
              client.waitForCluster(undefined, 0),
              client.listDatasets(),
            ]);
            const c = containerViews(configured, reported, snapshot.nodes, datasets).find(
              (x) => x.name === a.container,
            );
            if (c === undefined)
              throw new CliError(EXIT.NOT_FOUND, `no container "${a.container}" (see "flocker containers list")`);
            print(a, c, () => containerText(c));
          }),
        ),
    )
    .command(
      'status',
      'Cluster health: nodes alive, volumes converged or not and why',
      (b) => b.example('$0 status', 'exit code 1 when something is not converged'),
      run<GlobalArgs>(async (a, client) => {
        const [version, datasets, snapshot, events, aliveNodes] = await Promise.all([
          client.version(),
          client.listDatasets(),
          client.waitForCluster(undefined, 0),
          // A control service from before failover events has no such route.
          client.listEvents().catch((e: unknown): ClusterEvent[] => {
            if (e instanceof FlockerApiError && e.status === 404) return [];
            throw e;
          }),
          // Nodes alive with their state unknown are in no snapshot, only here (T1 S0: nodesUnknown.ts).
          client.listNodes(),
        ]);
        const live = datasets.filter((d) => !d.deleted);
        const health = clusterHealth(snapshot, datasets);
        const problems: string[] = [];
        for (const n of snapshot.nodes.filter((x) => !x.alive)) problems.push(deadNodeLine(n));
        problems.push(...unknownStateLines(snapshot, aliveNodes));
        problems.push(...health.problems);
        const fencing = snapshot.nodes.flatMap((n) => fencingLine(n) ?? []);
        // Copies holding writes the live volume lacks: no step left undone (the exit code is convergence's), but the
        // user must see them.
        const keptAside = keptAsideAttention(snapshot, datasets);
        const recent = recentEvents(events);
        const hostOf = (uuid: string) => snapshot.nodes.find((n) => n.uuid === uuid)?.host;
        const volumeOf = (id: string) => {
          const d = datasets.find((x) => x.dataset_id === id);
          return d ? nameOf(d) : undefined;
        };
        const converged = health.converged;
        const alive = snapshot.nodes.filter((n) => n.alive).length;
        const summary = {
          version: version.flocker,
          nodes: snapshot.nodes.length,
          nodes_alive: alive,
          volumes: live.length,
          volumes_converged: converged,
          volumes_deleting: health.deleting,
          problems,
          errors: health.errors,
          dead_nodes: snapshot.nodes
            .filter((n) => !n.alive)
            .map((n) => ({ uuid: n.uuid, host: n.host, last_seen: n.last_seen, dead_since: n.dead_since ?? null })),
          fencing: snapshot.nodes.flatMap((n) => (n.fencing ? [{ uuid: n.uuid, host: n.host, ...n.fencing }] : [])),
          kept_aside: keptAside.copies,
          events: recent,
        };
        // Each item one line: hosts, names and messages in them are other parties' (review T6 F3).
        print(a, summary, () =>
          [
            `Flocker ${version.flocker}`,
            `Nodes:    ${alive}/${snapshot.nodes.length} alive`,
            `Volumes:  ${converged}/${live.length} converged${health.deleting ? `, ${health.deleting} being deleted` : ''}`,
            ...(problems.length ? ['', 'Not converged:', ...problems.map((p) => `  - ${visible(p)}`)] : []),
            ...(keptAside.lines.length
              ? ['', 'Needs attention:', ...keptAside.lines.map((l) => `  - ${visible(l)}`)]
              : []),
            ...(fencing.length ? ['', 'Fencing:', ...fencing.map((f) => `  - ${visible(f)}`)] : []),
            ...(recent.length
              ? ['', 'Recent failover events:', ...recent.map((e) => `  - ${visible(eventLine(e, hostOf, volumeOf))}`)]
              : []),
          ].join('\n'),
        );
        if (problems.length) process.exitCode = EXIT.FAILURE;
      }),
    )
    .command(
      'ui',
      'Serve the web UI on 127.0.0.1, talking to the control service with these credentials',
      (b) => uiOptions(b),
      run<GlobalArgs & UiArgs>((a, client) => runUi(a, client, io.out, io.err)),
    )
    .command('ca', "The cluster's certificate authority (same as flocker-ca)", (c) => caCommands(c, 'flocker ca'))
    .demandCommand(1, 'Name a command; see flocker --help')
    .epilogue(
      [
        'Connection: flags, then FLOCKER_* environment, then the config file ($FLOCKER_CONFIG, ' +
          '~/.config/flocker/cli.yml or /etc/flocker/cli.yml: control_url, cacert, cert, key), ' +
          'then the local cluster in /etc/flocker.',
        'Exit codes: 0 success, 1 failure (or not converged, for status), 2 usage, 3 not found, ' +
          '4 conflict (e.g. leased), 5 timed out, 6 control service unreachable, 7 certificate problem ' +
          '(not trusted, rejected, expired) or forbidden, 8 refused until you act (volumes move: local storage). With --json, errors are one JSON line on stderr: ' +
          '{"error": {"code", "message", "exit_code"}}.',
        'Volumes may be named by name, id or id prefix; nodes by UUID, UUID prefix or address.',
      ].join('\n'),
    )
    .completion(
      'completion',
      'Print a completion script for bash, or zsh when $SHELL is zsh (commands, options, volume and node names)',
      (
        current: string,
        parsed: { [key: string]: unknown },
        defaultCompletion: () => void,
        done: (completions: string[]) => void,
      ) => {
        const at = argv.indexOf('--get-yargs-completions');
        const kind = completionKind(at < 0 ? [] : argv.slice(at + 1));
        if (kind === undefined) return defaultCompletion();
        const zsh = /zsh/.test(process.env.SHELL ?? '') || process.env.ZSH_NAME !== undefined;
        // Names from the control service; nothing (not an error on the terminal) when it does not answer soon.
        const client = makeClient(parsed);
        const fetched = Promise.all([
          client.waitForCluster(undefined, 0),
          kind === 'snapshot' ? client.listSnapshots() : [],
          kind === 'container' ? client.listContainers() : [],
        ]).then(([cluster, snapshots, containers]) =>
          completionCandidates(kind, { cluster, snapshots, containers }, current, zsh),
        );
        const timeout = new Promise<string[]>((resolve) => setTimeout(() => resolve([]), 3000).unref());
        Promise.race([fetched, timeout]).then(done, () => done([]));
      },
    )
    .strict()
    .help()
    .alias('h', 'help')
    .version(false)
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .middleware(refuseMissingValues(args, usageExit), true)
    .fail((msg, err) => {
      // A command's failure comes without a message; a .check() that throws (clone, ui --port) with one: usage.
      if (err && (!msg || err instanceof CliError)) throw err;
      // yargs reads a negative positional ("resize v -5G") as flags: name it instead of yargs' complaint. A command
      // name flocker lacks ("volumes delete") is an "Unknown argument" to yargs: name it and the commands there.
      const unknownCommand = msg.startsWith('Unknown argument')
        ? (unknownCommandProblem(argv) ?? extraArgumentProblem(argv))
        : undefined;
      usageExit(negativeArgumentProblem(argv) ?? unknownCommand ?? msg);
    });
}
