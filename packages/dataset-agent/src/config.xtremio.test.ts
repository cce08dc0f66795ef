import { parse } from 'yaml';
import { isAgentError } from './errors';
import { parseAgentConfig } from './config';

const base = { version: 1, 'control-service': { hostname: 'control' } };

/** The example of the storage-drivers README's XtremIO section. */
const README_EXAMPLE = `
version: 1
control-service:
  hostname: control.example.com
dataset:
  backend: xtremio
  xms_url: https://xms.example.com
  username: flocker
  password: secret
  cluster_id: prod-east
  verify_ca_path: /etc/flocker/xms-ca.pem
`;

describe('agent.yml dataset: {backend: xtremio} (issue 25)', () => {
  it('takes the README example and fills in the defaults', () => {
    const c = parseAgentConfig(parse(README_EXAMPLE));
    expect(c.dataset).toMatchObject({
      backend: 'xtremio',
      xms_url: 'https://xms.example.com',
      cluster_id: 'prod-east',
      initiator_name_file: '/etc/iscsi/initiatorname.iscsi',
      iscsiadm_path: 'iscsiadm',
      device_by_id_dir: '/dev/disk/by-id',
      target_group: 'Default',
      verify_peer: true,
    });
  });

  it('refuses missing credentials, a cluster_id unfit for volume names and unknown keys, under dataset.', () => {
    const refused = (dataset: object): string => {
      try {
        parseAgentConfig({ ...base, dataset });
      } catch (e) {
        if (isAgentError(e, 'CONFIG_INVALID')) return e.message;
        throw e;
      }
      throw new Error('accepted');
    };
    const ok = { backend: 'xtremio', xms_url: 'https://xms', username: 'u', password: 'p', cluster_id: 'c' };
    expect(refused({ ...ok, username: undefined })).toMatch(/dataset\.username/);
    expect(refused({ ...ok, cluster_id: 'a_b' })).toMatch(/dataset\.cluster_id/);
    expect(refused({ ...ok, storage_pool: 'x' })).toMatch(/storage_pool/);
  });
});
