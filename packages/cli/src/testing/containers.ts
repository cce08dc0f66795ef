/** Test support for the cli's own tests: container configurations. */
import type { ContainerConfiguration } from '@flocker/api';

/** Container `name` of `image` on node `node_uuid`: no ports, environment, links or volumes; never restarted. */
export const containerConfig = (name: string, node_uuid: string, image: string): ContainerConfiguration => ({
  name,
  node_uuid,
  image,
  ports: [],
  environment: {},
  links: [],
  volumes: [],
  restart_policy: { name: 'never' },
});
