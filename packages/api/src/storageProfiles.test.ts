import {
  ANY_PROFILE_BACKENDS,
  STORAGE_PROFILES,
  storageProfileFor,
  unknownStorageProfileMessage,
} from './storageProfiles';

describe('storage profiles: the one rule of the CLI, the Docker plugin and the web UI', () => {
  it('gold, silver and bronze in any case, on any backend or none known', () => {
    expect(STORAGE_PROFILES).toEqual(['gold', 'silver', 'bronze']);
    for (const backend of [undefined, 'loopback', 'aws', 'openstack', 'scaleio', 'xtremio', 'local-zfs'])
      expect(storageProfileFor(' Gold ', backend)).toEqual({ profile: 'gold' });
  });

  it('refuses another name where the backend has only the three, with the sentence the CLI has always given', () => {
    for (const backend of [undefined, 'loopback', 'aws', 'xtremio', 'local-btrfs'])
      expect(storageProfileFor('glod', backend)).toEqual({ problem: unknownStorageProfileMessage('glod') });
    expect(unknownStorageProfileMessage('glod')).toMatch(
      /^unknown storage profile "glod": use gold, silver or bronze \(on Cinder nodes, also a Cinder volume type; on ScaleIO nodes, a profile of its profile_storage_pools\)$/,
    );
    expect(storageProfileFor('  ', 'openstack')).toEqual({ problem: unknownStorageProfileMessage('  ') });
  });

  it('Cinder (a volume type) and ScaleIO (a key of profile_storage_pools) take any name, kept as given', () => {
    expect(ANY_PROFILE_BACKENDS).toEqual(['openstack', 'scaleio']);
    expect(storageProfileFor('fast-SSD', 'openstack')).toEqual({ profile: 'fast-SSD' });
    expect(storageProfileFor(' ssd-pool ', 'scaleio')).toEqual({ profile: 'ssd-pool' });
  });
});
