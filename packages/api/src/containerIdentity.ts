/**
 * The identity of a container's configuration: what the container agent reports for a container that runs it
 * (ContainerState.config) and what flocker-deploy --wait compares with what it configured. The node is left out
 * (the report names it); every other member counts, so a change of only the command, ports or environment is a
 * new identity.
 */
import { createHash } from 'node:crypto';
import type { ContainerConfiguration } from './containers';

/** JSON with object keys sorted (the configuration's members may come in any order), undefined members left out. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (typeof v === 'object' && v !== null) {
    const entries = Object.entries(v)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonical(x)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** 16 hex digits of the SHA-256 of the configuration without its node. */
export function containerConfigId(c: ContainerConfiguration): string {
  const { node_uuid: _node, ...rest } = c;
  return createHash('sha256').update(canonical(rest)).digest('hex').slice(0, 16);
}
