import { findStrayMounts } from './discoverLocalState';
import { containersUsing } from './containers';
import type { DiscoveredVolume } from './LocalState';

const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const DS2 = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
const vol = (v: Partial<DiscoveredVolume>): DiscoveredVolume => ({
  blockdeviceId: 'v1',
  datasetId: DS,
  size: 1,
  attachedTo: 'i-me',
  ...v,
});
const mount = (device: string, mountPoint: string, majorMinor = '7:1') => ({ device, mountPoint, majorMinor });

describe('findStrayMounts', () => {
  it('finds mounts at dataset paths of devices that are no volume attached here', () => {
    const volumes = [vol({ devicePath: '/dev/loop1', deviceNumber: '7:1', mountPoints: [`/flocker/${DS}`] })];
    const mounts = [
      mount('/dev/loop1', `/flocker/${DS}`),
      mount('/dev/loop5', `/flocker/${DS}`, '7:5'),
      mount('/dev/loop6', `/flocker/${DS2}`, '7:6'),
    ];
    expect(findStrayMounts('/flocker', mounts, volumes, 'i-me')).toEqual([
      { datasetId: DS, mountPath: `/flocker/${DS}`, device: '/dev/loop5' },
      { datasetId: DS2, mountPath: `/flocker/${DS2}`, device: '/dev/loop6' },
    ]);
  });

  it('matches devices by number as well as by path', () => {
    const volumes = [vol({ devicePath: '/dev/xvdf', deviceNumber: '202:80' })];
    expect(findStrayMounts('/flocker/', [mount('/dev/nvme1n1', `/flocker/${DS}`, '202:80')], volumes, 'i-me')).toEqual(
      [],
    );
  });

  it('leaves alone what it cannot judge: a volume here with an unknown device, a dataset being worked on, paths that are not Flocker datasets', () => {
    const mounts = [
      mount('/dev/loop5', `/flocker/${DS}`),
      mount('/dev/sdb1', '/flocker/lost+found'),
      mount('/dev/sdc', `/flocker/${DS2}/sub`),
      mount('/dev/sdd', '/elsewhere/x'),
    ];
    expect(findStrayMounts('/flocker', mounts, [vol({})], 'i-me')).toEqual([]);
    expect(findStrayMounts('/flocker', mounts, [], 'i-me', new Set([DS]))).toEqual([]);
    // The volume is attached to another instance now: our mount of it is stray.
    expect(findStrayMounts('/flocker', mounts, [vol({ attachedTo: 'i-b' })], 'i-me')).toHaveLength(1);
  });
});

describe('containersUsing', () => {
  it('picks running, paused and restarting containers with a mount from one of the paths', () => {
    const c = (Id: string, State: string, Source: string) => ({ Id, Names: [`/${Id}`], State, Mounts: [{ Source }] });
    const list = [
      c('a', 'running', `/flocker/${DS}`),
      c('b', 'paused', `/flocker/${DS}/sub`),
      c('c', 'exited', `/flocker/${DS}`),
      c('d', 'running', `/flocker/${DS}x`),
      c('e', 'restarting', `/flocker/${DS2}`),
    ];
    expect(
      containersUsing(list, { paths: [`/flocker/${DS}`, `/flocker/${DS2}`], volumes: [] }).map((x) => x.Id),
    ).toEqual(['a', 'b', 'e']);
  });

  it('picks containers using a named volume of a plugin driver (Docker shows no Source for those), never a local one', () => {
    const c = (Id: string, Driver: string, Name: string) => ({
      Id,
      Names: [`/${Id}`],
      State: 'running',
      Mounts: [{ Type: 'volume', Name, Driver, Source: '' }],
    });
    const list = [c('a', 'flocker', 'pg'), c('b', 'local', 'pg'), c('c', 'flocker', 'other')];
    expect(containersUsing(list, { paths: [], volumes: ['pg'] }).map((x) => x.Id)).toEqual(['a']);
  });
});
