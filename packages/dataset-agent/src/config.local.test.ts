import { isAgentError } from './errors';
import { parseAgentConfig } from './config';

const base = { version: 1, 'control-service': { hostname: 'control' } };

describe('agent.yml dataset: {backend: local} (issue 24)', () => {
  it('takes an engine and a pool; the transfer port defaults to 4525', () => {
    const c = parseAgentConfig({ ...base, dataset: { backend: 'local', engine: 'btrfs', pool: '/srv/flocker' } });
    expect(c.dataset).toEqual({ backend: 'local', engine: 'btrfs', pool: '/srv/flocker', transfer_port: 4525 });
    const z = parseAgentConfig({
      ...base,
      dataset: { backend: 'local', engine: 'zfs', pool: 'tank/flocker', transfer_port: 5000 },
    });
    expect(z.dataset).toMatchObject({ engine: 'zfs', transfer_port: 5000 });
  });

  it('takes a default interval for standby replicas (seconds, at least 1)', () => {
    const local = { backend: 'local', engine: 'btrfs', pool: '/p' };
    const c = parseAgentConfig({ ...base, dataset: { ...local, replica_interval_seconds: 10 } });
    expect(c.dataset).toMatchObject({ replica_interval_seconds: 10 });
    expect(() => parseAgentConfig({ ...base, dataset: { ...local, replica_interval_seconds: 0 } })).toThrow(
      /replica_interval_seconds/,
    );
  });

  it('takes how many move snapshots the old node keeps after a move away (0 to 64; absent: the default 1)', () => {
    const local = { backend: 'local', engine: 'btrfs', pool: '/p' };
    expect(parseAgentConfig({ ...base, dataset: { ...local, keep_source_snapshots: 0 } }).dataset).toMatchObject({
      keep_source_snapshots: 0,
    });
    expect(parseAgentConfig({ ...base, dataset: local }).dataset).not.toHaveProperty('keep_source_snapshots');
    for (const bad of [-1, 1.5, 65, '2'])
      expect(() => parseAgentConfig({ ...base, dataset: { ...local, keep_source_snapshots: bad } })).toThrow(
        /keep_source_snapshots/,
      );
  });

  it('refuses an unknown engine, a missing pool and unknown keys, naming them under dataset.', () => {
    const refused = (dataset: object): string => {
      try {
        parseAgentConfig({ ...base, dataset });
      } catch (e) {
        if (isAgentError(e, 'CONFIG_INVALID')) return e.message;
        throw e;
      }
      throw new Error('accepted');
    };
    expect(refused({ backend: 'local', engine: 'ext4', pool: '/p' })).toMatch(/dataset\.engine.*btrfs.*zfs/s);
    expect(refused({ backend: 'local', engine: 'btrfs' })).toMatch(/dataset\.pool/);
    expect(refused({ backend: 'local', engine: 'btrfs', pool: '/p', root_path: '/x' })).toMatch(/root_path/);
  });
});
