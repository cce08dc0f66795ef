import { createServer, type AddressInfo, type Socket } from 'node:net';
import winston from 'winston';
import { parseAgentConfig } from './config';
import { createAgentDriver } from './drivers';

const logger = winston.createLogger({ silent: true });
const base = { version: 1, 'control-service': { hostname: 'control' } };
const NODE = '5d9e4c1a-0b7e-4f1e-9a55-3b1f2c7d8e90';

describe('createAgentDriver', () => {
  it('builds the EBS driver from an aws section, with the configured instance id', async () => {
    const config = parseAgentConfig({
      ...base,
      dataset: {
        backend: 'aws',
        region: 'us-east-1',
        zone: 'us-east-1a',
        cluster_id: 'c1',
        instance_id: 'i-0123456789abcdef0',
        access_key_id: 'k',
        secret_access_key: 's',
        endpoint: 'http://127.0.0.1:1',
      },
    });
    const d = await createAgentDriver(config.dataset, NODE, logger);
    expect(d.driver.backend).toBe('aws');
    expect(d.instanceId).toBe('i-0123456789abcdef0');
    expect(d.poolChanges).toBeUndefined();
    expect(d.driver.allocationUnit()).toBe(1024 ** 3);
  });

  it('with a configured instance id, asks EC2 nothing before the start-up steps (checkInstance does)', async () => {
    // An EC2 endpoint that takes connections and never answers (a cloud API that hangs).
    const sockets = new Set<Socket>();
    const server = createServer((s) => void sockets.add(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const { port } = server.address() as AddressInfo;
      const config = parseAgentConfig({
        ...base,
        dataset: {
          backend: 'aws',
          region: 'us-east-1',
          zone: 'us-east-1a',
          cluster_id: 'c1',
          instance_id: 'i-0123456789abcdef0',
          access_key_id: 'k',
          secret_access_key: 's',
          endpoint: `http://127.0.0.1:${port}`,
        },
      });
      const t0 = Date.now();
      const d = await createAgentDriver(config.dataset, NODE, logger);
      // The check waits up to 5 s for EC2: well below that (a loaded host takes more than the usual few ms).
      expect(Date.now() - t0).toBeLessThan(4_000);
      expect(d.instanceId).toBe('i-0123456789abcdef0');
      expect(sockets.size).toBe(0);
      expect(d.checkInstance).toBeDefined();
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    }
  });

  it('builds the Cinder driver from an openstack section (bare-metal attachments)', async () => {
    const config = parseAgentConfig({
      ...base,
      dataset: {
        backend: 'openstack',
        auth_plugin: 'noauth',
        cinder_url: 'http://127.0.0.1:1/v3',
        project_id: 'p',
        cluster_id: 'c1',
        attach_mode: 'cinder',
        instance_id: 'node-a',
      },
    });
    const d = await createAgentDriver(config.dataset, NODE, logger);
    expect(d.driver.backend).toBe('openstack');
    expect(d.instanceId).toBe('node-a');
  });
});
