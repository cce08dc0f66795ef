/**
 * Which nodes' agents and plugins parse the views' members new in this release: the lease hand-over's
 * (`release_on_request`, `release_requested`, session 21) and a manifestation's `grow_pending` (session 22). They read
 * the agent channel's views strictly (docs/compatibility.md, agent channel): a node one release behind refuses a view
 * carrying one. So the views served to a node whose dataset agent reports an older release, or none, leave them all
 * out (Views.newMembersHidden: one rule, one release number): such a node sees such a lease as a plain lease and a
 * pending grow's node state as before. Its plugin (the same package: "Within a node") neither takes such leases nor
 * answers requests, so it loses nothing by not seeing them; a current plugin served such a view sees its idle leases
 * as plain (unheard: let go of at once), so it needs no grow_pending there either. Pure.
 */

/**
 * The first release whose nodes parse the members new in this release: the lease hand-over's `release_on_request` and
 * `release_requested`, and a manifestation's `grow_pending` (all new in the same release; a member added to the views
 * in this release joins this gate, Views.newMembersHidden). Undefined: this control service's own release (every node
 * reporting an older one is behind it). Pin it to this release's number when the next release is cut: then nodes of
 * this release keep seeing the members under the next control service, as its nodes one release behind.
 */
export const NEW_MEMBERS_SINCE: string | undefined = undefined;

/** A release's number as compared: major, minor, patch, and whether it is a pre-release of them (`-rc1`, `~rc1`). */
interface ParsedRelease {
  readonly parts: readonly [number, number, number];
  readonly pre: boolean;
}

function parseRelease(version: string): ParsedRelease | undefined {
  // Debian's stamped versions (packaging/deb/build.sh) and the workspace's are semver-shaped; `+…` is build metadata.
  const m = /^(\d+)\.(\d+)\.(\d+)([-~][^+]*)?(\+.*)?$/.exec(version);
  if (m === null) return undefined;
  return { parts: [Number(m[1]), Number(m[2]), Number(m[3])], pre: m[4] !== undefined };
}

/**
 * Whether release `a` is older than `b`: by major, minor, patch, a pre-release older than its release (two pre-releases
 * of one number count as the same). Undefined when either is not a release number.
 */
export function olderRelease(a: string, b: string): boolean | undefined {
  const x = parseRelease(a);
  const y = parseRelease(b);
  if (x === undefined || y === undefined) return undefined;
  for (let i = 0; i < 3; i++) {
    const d = (x.parts[i] as number) - (y.parts[i] as number);
    if (d !== 0) return d < 0;
  }
  return x.pre && !y.pre;
}

/**
 * Whether a node whose dataset agent reports `reported` (undefined: none, an agent from before the field) parses the
 * members new in this release, given `since` (NEW_MEMBERS_SINCE, or the control service's own release). A version
 * that is not a release number, the same string aside, counts as older: leaving the members out costs only the
 * hand-over's speed for that node's leases, showing them to a node that cannot parse them costs it its view.
 */
export function parsesNewMembers(reported: string | undefined, since: string): boolean {
  if (reported === undefined) return false;
  if (reported === since) return true;
  return olderRelease(reported, since) === false;
}
