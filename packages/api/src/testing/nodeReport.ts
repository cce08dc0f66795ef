/** The smallest node report the control service accepts (a node with nothing on it), for client tests. */
import type { NodeReport } from '../schemas';

export const emptyNodeReport = (uuid = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa'): NodeReport => ({
  uuid,
  era: 'e',
  host: 'h',
  instance_id: 'i',
  backend: 'loopback',
  manifestations: [],
  errors: [],
});
