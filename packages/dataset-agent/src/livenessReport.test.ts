/**
 * FR19-9 (session 19): a liveness-only report carries the node's zone and max_volume_size when the agent knows them
 * (agent.yml, before any start-up step), so `/v1/state/nodes` lists a node that has not finished its first look with
 * its zone, not without one.
 */
import type { NodeReport } from '@flocker/api';
import { livenessReport, withoutFencingStated } from './livenessReport';

const FULL: NodeReport = {
  uuid: '11111111-1111-4111-8111-111111111111',
  era: '22222222-2222-4222-8222-222222222222',
  host: '10.0.0.1',
  instance_id: 'i-me',
  backend: 'ebs',
  manifestations: [],
  errors: [],
  version: '1.2.3',
  zone: 'eu-west-1a',
  max_volume_size: 16 * 1024 ** 4,
  volumes: [{ blockdevice_id: 'vol-1', dataset_id: 'ds-1', size: 1024, attached_to: 'i-me' }],
};
const SINCE = '2026-12-06T09:00:00.000Z';

describe('livenessReport', () => {
  it('carries the identity, the zone and the largest volume size, and nothing of the (empty) view', () => {
    const r = livenessReport(FULL, SINCE);
    expect(r).toEqual({
      uuid: FULL.uuid,
      era: FULL.era,
      host: FULL.host,
      instance_id: FULL.instance_id,
      backend: 'ebs',
      manifestations: [],
      errors: [],
      version: '1.2.3',
      zone: 'eu-west-1a',
      max_volume_size: 16 * 1024 ** 4,
      backend_unseen: { since: SINCE, reason: 'listing volumes of ebs: no answer yet', fencing_stated: true },
    });
  });

  it('states its fence (review s27 F12): fencing_stated, left out on request and by withoutFencingStated', () => {
    expect(livenessReport(FULL, SINCE).backend_unseen?.fencing_stated).toBe(true);
    expect(livenessReport(FULL, SINCE, false).backend_unseen).toEqual({
      since: SINCE,
      reason: 'listing volumes of ebs: no answer yet',
    });
    expect(withoutFencingStated(livenessReport(FULL, SINCE))).toEqual(livenessReport(FULL, SINCE, false));
  });

  it('leaves out the zone and the size when unknown', () => {
    const { zone: _z, max_volume_size: _m, ...unknown } = FULL;
    const r = livenessReport(unknown, SINCE);
    expect('zone' in r).toBe(false);
    expect('max_volume_size' in r).toBe(false);
  });

  it("carries the node's fence report (W7): known without a look, and the control service shows it", () => {
    const fencing = { state: 'recovered' as const, since: SINCE, reason: 'no contact', stopped_containers: ['db'] };
    expect(livenessReport({ ...FULL, fencing }, SINCE).fencing).toEqual(fencing);
    expect('fencing' in livenessReport(FULL, SINCE)).toBe(false);
  });
});
