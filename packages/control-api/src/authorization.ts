/**
 * Who may do what, as a pure function of the caller's identity (from its verified
 * client certificate), the route, its parameters and body, and the few facts of
 * the configuration the rules need. No I/O: the table test covers every rule.
 *
 * - API users (`user-<name>`): the whole public API; the agent channel read-only.
 * - Nodes (`node-<uuid>`): report their own state only, read everything, and make
 *   the configuration changes that concern only themselves (the Docker plugin on a
 *   node uses the node's certificate). Least privilege: a node deletes and resizes only
 *   datasets whose primary it is, releases only its own lease, never moves one to another
 *   node, and may pull one to itself (create on itself, move to itself, take its own
 *   lease) only as the Docker plugin does: the other node's live lease still forbids
 *   that move (409), and a node may not ask for it `when_released` (issue 24: that moves a volume in use). It
 *   may not pin a lease nor unpin a pinned one, nor set a loss opt-in (accept-replica-loss, accept-data-loss).
 *   Nor may it clone live a dataset another node leases (cloneDecision); a snapshot or a backup of it, it may.
 *   One move away from itself: the put-back (putBackDecision).
 * - Anyone else (the control certificate, an unknown common name): nothing.
 */
import { type Identity, isLocalBackend, type NodeReport } from '@flocker/api';
import { LOSS_OPT_IN_KEYS } from './dataNode';

export interface AuthorizationRequest {
  /** Lower-case HTTP method of the matched route. */
  method: string;
  /** The route's path template, e.g. `/v1/configuration/datasets/:id`. */
  route: string;
  params: Readonly<Record<string, string>>;
  /** The parsed JSON body (not yet validated). */
  body: unknown;
  /** X-If-Configuration-Matches as sent, if it was (the handler answers 412 unless it is the current tag). */
  ifConfigurationMatches?: string;
}

/** What the rules need to know of the current configuration. */
export interface AuthorizationFacts {
  /** The node holding a live lease on the dataset, if any. */
  leaseHolder(datasetId: string): string | undefined;
  /** The dataset's configured primary, if the dataset exists. */
  primaryOf(datasetId: string): string | undefined;
  /** Whether the live lease on the dataset is pinned (kept when its node dies). */
  leasePinned(datasetId: string): boolean;
  /** The node the dataset's data-node marker names (@flocker/api METADATA_DATA_NODE_KEY), if any. Absent: none. */
  dataNodeOf?(datasetId: string): string | undefined;
  /**
   * Whether `node`'s latest report since this service started is a local-backend node's listing a copy of the dataset
   * (dead or alive: reportShowsLocalCopy). Absent: no.
   */
  holdsLocalCopy?(datasetId: string, node: string): boolean;
  /**
   * The dataset a configured snapshot is of. Absent: unknown. No rule asks it since review FR19-2 (a node may clone any
   * snapshot: cloneDecision); tls.ts still supplies it.
   */
  datasetOfSnapshot?(snapshotId: string): string | undefined;
  /** The host a node last reported (or the configuration knows it by), for refusals' text only. Absent: unknown. */
  hostOf?(node: string): string | undefined;
}

export type AuthorizationDecision = { allowed: true } | { allowed: false; description: string };

const ALLOW: AuthorizationDecision = { allowed: true };
const deny = (description: string): AuthorizationDecision => ({ allowed: false, description });

/**
 * A string field of a JSON object body. The server hands authorize() the body as the
 * route's schema parsed it (UUIDs lower-cased, the same values the handler acts on);
 * lower-casing here again only matters for a body the schema refused (the handler
 * then answers 400 whatever is decided here).
 */
function isObject(body: unknown): body is Record<string, unknown> {
  return typeof body === 'object' && body !== null && !Array.isArray(body);
}

function field(body: unknown, name: string): string | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
  const value: unknown = (body as Record<string, unknown>)[name];
  return typeof value === 'string' ? value.toLowerCase() : undefined;
}

function pinnedField(body: unknown): unknown {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
  return (body as Record<string, unknown>)['pinned'];
}

/** The loss opt-in (@flocker/api METADATA_ACCEPT_*_LOSS_KEY) the body's metadata sets to a value, if any. */
function lossOptInSet(body: unknown): string | undefined {
  if (!isObject(body) || !isObject(body['metadata'])) return undefined;
  const metadata = body['metadata'];
  return LOSS_OPT_IN_KEYS.find((k) => Object.hasOwn(metadata, k) && metadata[k] !== null);
}

function hasField(body: unknown, name: string): boolean {
  return typeof body === 'object' && body !== null && !Array.isArray(body) && name in body;
}

/**
 * A node's live clone (source_dataset_id: the control service asks the source's primary for a snapshot of it now)
 * reads the volume as it is, under its user's feet. Like a pull, which another node's live lease refuses
 * (409 LEASE_HELD), it may not reach a volume another node is using (review T6 F0c: any Docker user on any host could
 * read one with `-o clone-of=`): refused while another node holds the source's lease; an API user decides that.
 * A clone of an existing snapshot (source_snapshot_id, the plugin's `-o from-snapshot=`) or a restore of a backup
 * (source_backup) reads a point-in-time copy someone authorized chose to take (review FR19-2): allowed. A node may not
 * ask for a snapshot or a backup, and sets the snapshot schedule only of a dataset whose primary it is (a schedule
 * stays with the dataset when it moves: the new primary, or an API user, may change it).
 * Unknown sources: the store answers.
 */
function cloneDecision(who: string, me: string, body: unknown, facts: AuthorizationFacts): AuthorizationDecision {
  const source = field(body, 'source_dataset_id');
  if (source === undefined) return ALLOW;
  const holder = facts.leaseHolder(source);
  if (holder === undefined || holder === me) return ALLOW;
  return deny(
    `${who} may not clone dataset ${source} as it is now: node ${holder} holds its lease (the volume is in use there). Reading a volume another node is using as it is now is for an API user: clone it from a snapshot of it (one an API user took: flocker snapshots create; the Docker plugin's -o from-snapshot=), clone it as an API user (administrator certificate), or once the lease is released.`,
  );
}

function authorizeNode(me: string, req: AuthorizationRequest, facts: AuthorizationFacts): AuthorizationDecision {
  const who = `node ${me}`;
  if (req.method === 'get') return ALLOW;
  const key = `${req.method} ${req.route}`;
  switch (key) {
    case 'put /v1/agent/nodes/:uuid': {
      const target = (req.params['uuid'] ?? '').toLowerCase();
      return target === me
        ? ALLOW
        : deny(`${who} may report only its own state, not that of node ${req.params['uuid'] ?? '(none)'}.`);
    }
    case 'put /v1/agent/nodes/:uuid/containers': {
      const target = (req.params['uuid'] ?? '').toLowerCase();
      return target === me
        ? ALLOW
        : deny(`${who} may report only its own containers, not those of node ${req.params['uuid'] ?? '(none)'}.`);
    }
    case 'post /v1/configuration/datasets': {
      const primary = field(req.body, 'primary');
      if (primary !== me)
        return deny(`${who} may create datasets only with itself as primary (got primary ${primary ?? '(none)'}).`);
      return cloneDecision(who, me, req.body, facts);
    }
    case 'post /v1/configuration/datasets/:id': {
      const id = (req.params['id'] ?? '').toLowerCase();
      const current = facts.primaryOf(id);
      // A resize or a change of the snapshot schedule (metadata): both concern the node the dataset lives on.
      const resizes = hasField(req.body, 'maximum_size') || hasField(req.body, 'metadata');
      // Giving up writes is the user's decision, like pinning or when_released (review RV2): set by a node, its agent
      // would keep another node's branch aside or start the dataset empty. Withdrawing one (null) stays allowed.
      const optIn = lossOptInSet(req.body);
      if (optIn !== undefined) {
        return deny(
          `${who} may not set ${optIn}: accepting the loss of writes is for an API user (administrator certificate).`,
        );
      }
      if (hasField(req.body, 'primary')) {
        const primary = field(req.body, 'primary');
        if (primary !== me && primary !== undefined && current === me)
          return putBackDecision(me, id, primary, req, facts);
        // Pulling a dataset to itself is how the Docker plugin mounts a volume last used elsewhere;
        // a live lease of another node still refuses the move (409), so a volume in use stays put.
        if (primary !== me) return deny(`${who} may move datasets only to itself, not to ${primary ?? '(none)'}.`);
        // when_released moves a volume its primary's lease holds (issue 24): a node pulling with it would take a
        // volume a container elsewhere uses; only an API user decides that.
        if (isObject(req.body) && req.body['when_released'] === true) {
          return deny(
            `${who} may not move a dataset when_released: moving a volume another node is using is for an API user (administrator certificate).`,
          );
        }
        if (resizes && current !== undefined && current !== me) {
          return deny(
            `${who} may resize (or change the snapshot schedule of) only datasets whose primary it is; dataset ${id} is on node ${current} (move it first, then change it).`,
          );
        }
        return ALLOW;
      }
      // Only a resize: it concerns the node the dataset lives on (unknown ids: the store answers 404).
      return current === undefined || current === me
        ? ALLOW
        : deny(`${who} may change only datasets whose primary it is; dataset ${id} is on node ${current}.`);
    }
    case 'delete /v1/configuration/datasets/:id': {
      const id = (req.params['id'] ?? '').toLowerCase();
      const current = facts.primaryOf(id);
      if (current !== undefined && current !== me) {
        return deny(`${who} may delete only datasets whose primary it is; dataset ${id} is on node ${current}.`);
      }
      const holder = facts.leaseHolder(id);
      return holder === undefined || holder === me
        ? ALLOW
        : deny(`${who} may not delete dataset ${id}: node ${holder} holds its lease.`);
    }
    case 'post /v1/configuration/leases': {
      const node = field(req.body, 'node_uuid');
      if (node !== me) return deny(`${who} may take leases only for itself, not for ${node ?? '(none)'}.`);
      // Pinning decides what happens when this very node dies: an administrator's call, not the node's.
      const pinned = pinnedField(req.body);
      if (pinned === true) {
        return deny(
          `${who} may not pin a lease (pinned: true keeps it when the node is declared dead); only an API user (administrator certificate) may pin.`,
        );
      }
      const id = field(req.body, 'dataset_id');
      if (pinned === false && id !== undefined && facts.leasePinned(id)) {
        return deny(
          `${who} may not unpin the lease on dataset ${id} (pinned: false); only an API user may. Leave pinned out to renew it as it is.`,
        );
      }
      return ALLOW;
    }
    case 'delete /v1/configuration/leases/:dataset_id': {
      const id = (req.params['dataset_id'] ?? '').toLowerCase();
      const holder = facts.leaseHolder(id);
      // Its own lease: giving up its own hold is always its call, wherever the dataset is, whether one
      // holder's share (?holder=) or all of it. Another node's lease: not even one holder's share.
      // No lease at all: a no-op the store answers 404 (the plugin's idempotent let-go relies on it).
      return holder === undefined || holder === me
        ? ALLOW
        : deny(`${who} may release only its own leases; node ${holder} holds the lease on dataset ${id}.`);
    }
    case 'delete /v1/configuration/leases/:dataset_id/release-request': {
      const id = (req.params['dataset_id'] ?? '').toLowerCase();
      const holder = facts.leaseHolder(id);
      // Declining says "in use here": only the holder knows (its plugin); no lease at all: the store answers 404.
      return holder === undefined || holder === me
        ? ALLOW
        : deny(`${who} may decline only requests for its own leases; node ${holder} holds the lease on dataset ${id}.`);
    }
    default:
      return deny(`${who} may not ${req.method.toUpperCase()} ${req.route}.`);
  }
}

/**
 * The put-back (follow-up of volume-plugin 7cae1b3): a Docker Mount that gave up on a move it started (its agent
 * refused it until the user acts, e.g. the data is on a dead node's local pool) makes the node the data is on the
 * primary again, rather than leave the volume "moving" to a host its user never got it on. Allowed to the current
 * primary only, only to the node the data-node marker names and only while that node's latest report (local storage,
 * since this service started) lists a copy of it (review RV2 finding 4: a completed move's marker stays until a report
 * settles it, so the marker alone may name a node whose copy is gone), only while the requester's own latest report
 * lists none (review RV3 finding 3: after a completed move the marker and the old node's report stay while it has not
 * retired its copy, the requester's being the newest), only conditional on the configuration tag (the
 * plugin decided on what it read: the handler answers 412 if anything changed since), with no lease on the dataset
 * and nothing but the primary in the change. As narrow as its only user (volume-plugin mayPutBack, since 5ad82e9):
 * never for block storage (a takeover from a dead node reattaches the volume; putting it back would undo a failover).
 */
function putBackDecision(
  me: string,
  id: string,
  primary: string,
  req: AuthorizationRequest,
  facts: AuthorizationFacts,
): AuthorizationDecision {
  const who = `node ${me}`;
  // Review FR finding 6: a node by its host where the service knows it (an operator knows hosts, not UUIDs).
  const named = (n: string): string => {
    const host = facts.hostOf?.(n);
    return host === undefined ? `node ${n}` : `host ${host} (node ${n})`;
  };
  const refused = `${who} may move datasets only to itself, not to ${named(primary)}`;
  if (!isObject(req.body) || Object.keys(req.body).some((k) => k !== 'primary')) {
    return deny(
      `${refused}; it may only put back a dataset it is the primary of where its data is, changing nothing else.`,
    );
  }
  const dataNode = facts.dataNodeOf?.(id);
  if (primary !== dataNode) {
    return deny(
      `${refused}; it may only put back a dataset it is the primary of where its data is (${dataNode === undefined ? 'unknown' : named(dataNode)}).`,
    );
  }
  if (facts.holdsLocalCopy?.(id, primary) !== true) {
    return deny(
      `${refused}; it may only put back a dataset where its data is, and ${named(primary)}'s latest report lists no copy of dataset ${id} on local storage.`,
    );
  }
  // Review RV3 finding 3: the requester's own copy may be the newest (a completed move whose old node died before its
  // retire keeps marker and report): putting it back would make a node without it the primary. mayPutBack asks the same.
  if (facts.holdsLocalCopy?.(id, me) === true) {
    return deny(
      `${refused}; refused: this node's own latest report lists a copy of dataset ${id} (its data is here): nothing to put back.`,
    );
  }
  if (req.ifConfigurationMatches === undefined) {
    return deny(
      `${refused} unconditionally: putting dataset ${id} back where its data is needs X-If-Configuration-Matches.`,
    );
  }
  const holder = facts.leaseHolder(id);
  if (holder !== undefined) return deny(`${refused}: ${named(holder)} holds the lease on dataset ${id}.`);
  return ALLOW;
}

/**
 * AuthorizationFacts.holdsLocalCopy from a node's latest report since this service started: a local-backend node
 * listing the dataset (a live copy; its retained ones are listed apart). Dead or alive: the put-back is what a Mount
 * does when the data is on a dead node's pool (the plugin's mayPutBack asks the same of its snapshot).
 */
export function reportShowsLocalCopy(
  report: Pick<NodeReport, 'backend' | 'manifestations'> | undefined,
  datasetId: string,
): boolean {
  return (
    report !== undefined &&
    isLocalBackend(report.backend) &&
    report.manifestations.some((m) => m.dataset_id === datasetId)
  );
}

export function authorize(
  identity: Identity | undefined,
  req: AuthorizationRequest,
  facts: AuthorizationFacts,
): AuthorizationDecision {
  if (identity === undefined) {
    return deny(
      'The client certificate names no Flocker identity (expected a common name user-<name> or node-<uuid>).',
    );
  }
  switch (identity.kind) {
    case 'user':
      if (req.route.startsWith('/v1/agent/') && req.method !== 'get') {
        return deny(
          `API user ${identity.name} may read the agent channel but not write to it; only a node reports its own state.`,
        );
      }
      return ALLOW;
    case 'node':
      return authorizeNode(identity.uuid.toLowerCase(), req, facts);
    case 'control':
      return deny('The control service certificate is not a client identity; use an API user or node certificate.');
  }
}
