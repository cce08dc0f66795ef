import {
  holderMap,
  nameProblem,
  normaliseNaa,
  parseInitiatorName,
  parseSnapshotName,
  parseVolumeName,
  snapshotName,
  volumeName,
  xmsSize,
} from './names';
import { parseSessions, portalAddress } from './iscsi';
import { errorText } from './client';

describe('XtremIO volume names', () => {
  it('round-trips cluster, dataset, nonce and profile', () => {
    const p = {
      clusterId: 'c-1',
      datasetId: '0b6b9c2e-5f1a-4c55-9d0e-2f1d2c3b4a59',
      nonce: 'abcdef012345',
      profile: 'gold',
    };
    expect(parseVolumeName(volumeName(p))).toEqual(p);
    const { profile: _p, ...bare } = p;
    expect(parseVolumeName(volumeName(bare))).toEqual(bare);
  });
  it('is null for names that are not Flocker volumes (or hostile)', () => {
    for (const n of [
      'vol1',
      '../../etc/passwd',
      'flocker_c_d_short',
      'flocker_c_d_abcdef012345_x_y',
      'flocker__d_abcdef012345',
    ])
      expect(parseVolumeName(n)).toBeNull();
  });
  it('says what cannot be named', () => {
    expect(nameProblem('a_b', undefined, 'c')).toMatch(/dataset id/);
    expect(nameProblem('d', 'gold fast', 'c')).toMatch(/profile/);
    expect(nameProblem('d'.repeat(100), undefined, 'c'.repeat(40))).toMatch(/more than XtremIO's 128/);
    expect(
      nameProblem('0b6b9c2e-5f1a-4c55-9d0e-2f1d2c3b4a59', 'gold', '0b6b9c2e-5f1a-4c55-9d0e-2f1d2c3b4a59'),
    ).toBeUndefined();
  });
});

describe('XtremIO snapshot names', () => {
  it('round-trips cluster, dataset and snapshot id; volume names are not snapshot names', () => {
    const sid = '6c3b1f4e-2a9d-4e7b-8f10-5d2c9a7b3e41';
    expect(parseSnapshotName(snapshotName('c-1', 'd-2', sid))).toEqual({
      clusterId: 'c-1',
      datasetId: 'd-2',
      snapshotId: sid,
    });
    expect(parseSnapshotName(volumeName({ clusterId: 'c', datasetId: 'd', nonce: 'abcdef012345' }))).toBeNull();
    expect(parseVolumeName(snapshotName('c', 'd', sid))).toBeNull();
  });
});

describe('holderMap', () => {
  const m = (index: number, ig: string) => ({ index, 'vol-name': 'v', 'ig-name': ig, lun: 1 });
  it('is the first mapping made (lowest index), null without any', () => {
    expect(holderMap([])).toBeNull();
    expect(holderMap([m(7, 'b'), m(5, 'a')])?.['ig-name']).toBe('a');
  });
});

describe('host-side parsing', () => {
  it('normalises NAA ids as udev spells wwn-0x…', () => {
    expect(normaliseNaa('514F0C5D8E000001')).toBe('514f0c5d8e000001');
    expect(normaliseNaa('0x514f0c5d8e000001')).toBe('514f0c5d8e000001');
    expect(normaliseNaa('51:4f:0c:5d:8e:00:00:01')).toBe('514f0c5d8e000001');
    expect(normaliseNaa('')).toBeNull();
    expect(normaliseNaa('../x')).toBeNull();
  });
  it('reads InitiatorName= and ignores comments', () => {
    expect(parseInitiatorName('## DO NOT EDIT\nInitiatorName=iqn.1993-08.org.debian:01:abc\n')).toBe(
      'iqn.1993-08.org.debian:01:abc',
    );
    expect(parseInitiatorName('#InitiatorName=x\n')).toBeNull();
  });
  it('parses iscsiadm -m session and portal addresses', () => {
    expect(parseSessions('tcp: [1] 10.205.68.5:3260,1 iqn.2008-05.com.xtremio:001e67939c34 (non-flash)\n')).toEqual([
      'iqn.2008-05.com.xtremio:001e67939c34',
    ]);
    expect(portalAddress({ 'ip-addr': '10.205.68.5/16', 'ip-port': 3260, 'port-address': 'iqn' })).toBe(
      '10.205.68.5:3260',
    );
  });
  it('sizes in GiB with a g suffix, error texts from XMS bodies', () => {
    expect(xmsSize(3 * 1024 ** 3)).toBe('3g');
    expect(errorText('{"message": "obj_not_found", "error_code": 400}')).toBe('obj_not_found');
    expect(errorText('<html>Bad gateway</html>')).toBe('Bad gateway');
  });
});
