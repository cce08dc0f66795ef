/**
 * Who holds a cluster certificate, read from its subject common name
 * (the naming Flocker used): "control-service", "node-<uuid>", "user-<name>".
 */
import { z } from 'zod';
import { Uuid } from './schemas';

export const CONTROL_COMMON_NAME = 'control-service';
export const NODE_PREFIX = 'node-';
export const USER_PREFIX = 'user-';

export type Identity = { kind: 'control' } | { kind: 'node'; uuid: string } | { kind: 'user'; name: string };

export const ApiUserName = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/,
    'user names are 1-64 letters, digits, "_", "." or "-", starting with a letter or digit',
  );

export function nodeCommonName(uuid: string): string {
  return `${NODE_PREFIX}${uuid}`;
}
export function userCommonName(name: string): string {
  return `${USER_PREFIX}${name}`;
}

export function identityFromCommonName(cn: string): Identity | undefined {
  if (cn === CONTROL_COMMON_NAME) return { kind: 'control' };
  if (cn.startsWith(NODE_PREFIX)) {
    // The API's Uuid (any hex, lower-cased): a node id the API takes is one a certificate may name.
    const uuid = Uuid.safeParse(cn.slice(NODE_PREFIX.length));
    return uuid.success ? { kind: 'node', uuid: uuid.data } : undefined;
  }
  if (cn.startsWith(USER_PREFIX)) {
    const name = cn.slice(USER_PREFIX.length);
    return ApiUserName.safeParse(name).success ? { kind: 'user', name } : undefined;
  }
  return undefined;
}
