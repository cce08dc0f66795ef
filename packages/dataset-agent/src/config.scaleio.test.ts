import { parse } from 'yaml';
import { isAgentError } from './errors';
import { parseAgentConfig } from './config';

const base = { version: 1, 'control-service': { hostname: 'control' } };

/** The examples of the storage-drivers README's ScaleIO and Rackspace sections. */
const SCALEIO_EXAMPLE = `
version: 1
control-service:
  hostname: control.example.com
dataset:
  backend: scaleio
  gateway_url: https://scaleio-gw.example.com
  username: flocker
  password: secret
  verify_ca_path: /etc/flocker/scaleio-gw-ca.pem
  cluster_id: 3e1b5c44-0f0e-4a43-9d57-5b0f1c3a6a11
  storage_pool_id: 12a3b4c500000000
  profile_storage_pools:
    gold: 12a3b4c500000001
    bronze: 12a3b4c500000002
  sdc_guid: 028888FA-502A-4FAC-A888-1FA3B256358C
`;

const RACKSPACE_EXAMPLE = `
version: 1
control-service:
  hostname: control.example.com
dataset:
  backend: rackspace
  username: flocker
  api_key: 0123456789abcdef0123456789abcdef
  region: DFW
  cluster_id: 3e1b5c44-0f0e-4a43-9d57-5b0f1c3a6a11
`;

function refused(dataset: object): string {
  try {
    parseAgentConfig({ ...base, dataset });
  } catch (e) {
    if (isAgentError(e, 'CONFIG_INVALID')) return e.message;
    throw e;
  }
  throw new Error('accepted');
}

describe('agent.yml dataset: {backend: scaleio} (issue 25)', () => {
  it('takes the README example and fills in the defaults', () => {
    expect(parseAgentConfig(parse(SCALEIO_EXAMPLE)).dataset).toMatchObject({
      backend: 'scaleio',
      gateway_url: 'https://scaleio-gw.example.com',
      storage_pool_id: '12a3b4c500000000',
      profile_storage_pools: { gold: '12a3b4c500000001', bronze: '12a3b4c500000002' },
      volume_type: 'ThinProvisioned',
      device_by_id_dir: '/dev/disk/by-id',
      verify_peer: true,
    });
  });

  it('refuses missing credentials and a profile on the default pool, under dataset.', () => {
    const ok = {
      backend: 'scaleio',
      gateway_url: 'https://gw',
      username: 'u',
      password: 'p',
      cluster_id: 'c',
      storage_pool_id: 'p0',
    };
    expect(refused({ ...ok, password: undefined })).toMatch(/dataset\.password/);
    expect(refused({ ...ok, profile_storage_pools: { gold: 'p0' } })).toMatch(/dataset\.profile_storage_pools/);
  });
});

describe('agent.yml dataset: {backend: rackspace} (issue 25)', () => {
  it('takes the README example as the Cinder driver with auth_plugin rackspace', () => {
    expect(parseAgentConfig(parse(RACKSPACE_EXAMPLE)).dataset).toMatchObject({
      backend: 'rackspace',
      auth_plugin: 'rackspace',
      username: 'flocker',
      region: 'DFW',
      attach_mode: 'nova',
    });
  });

  it('needs the API key and the region', () => {
    const ok = { backend: 'rackspace', username: 'u', api_key: 'k', region: 'ORD', cluster_id: 'c' };
    expect(refused({ ...ok, api_key: undefined })).toMatch(/dataset\.api_key/);
    expect(refused({ ...ok, region: undefined })).toMatch(/dataset\.region/);
  });
});
