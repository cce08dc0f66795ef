/**
 * `flocker nodes forget <node>` (session 18, review FR finding 9): an operator retires a host for good. The control
 * service keeps what it knew of every node (the file store's node_identities.json, the configuration's nodes), so a
 * retired block-storage host came back dead after each control restart; DELETE /v1/configuration/nodes/:node forgets
 * one. Refused (409) while the node reports or a volume, lease or container is still on it: each thing to do first
 * is printed on its own line.
 */
import { FlockerApiError, type FlockerClient, type ForgottenNode } from '@flocker/api';
import { CliError, EXIT } from './errors';
import { visible } from './format';

/** The node forgotten; a 409's list of what to do first, one line each. */
export async function forgetNode(client: FlockerClient, node: string): Promise<ForgottenNode> {
  try {
    return await client.forgetNode(node);
  } catch (e) {
    if (e instanceof FlockerApiError && e.status === 409 && e.errors !== undefined && e.errors.length > 0) {
      const joined = e.errors.join(' ');
      const head = e.description.endsWith(joined)
        ? e.description.slice(0, e.description.length - joined.length).trimEnd()
        : e.description;
      // One line each: the items name hosts and volumes other parties chose.
      throw new CliError(EXIT.CONFLICT, [head, ...e.errors.map((x) => `  - ${visible(x)}`)].join('\n'), e.code);
    }
    throw e;
  }
}

/** What a person reads once it is forgotten. */
export function forgottenText(f: ForgottenNode): string {
  const name = f.host === undefined ? `node ${f.uuid}` : `host ${visible(f.host)} (node ${f.uuid})`;
  const lines = [`Forgot ${name}: it is no longer shown, dead or alive, nor after a control service restart.`];
  if (f.accepted_loss_datasets.length > 0)
    lines.push(
      `No longer named as an accepted loss of: ${f.accepted_loss_datasets.join(', ')} (should it come back, its writes there are kept aside only if you accept the loss again).`,
    );
  if (f.data_node_datasets.length > 0)
    lines.push(
      `Still named as where the data may be (data-node marker) of: ${f.data_node_datasets.join(', ')}. If the host is gone for good, moving those needs --accept-data-loss.`,
    );
  return lines.join('\n');
}
