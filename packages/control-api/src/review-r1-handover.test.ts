/**
 * Review R1 (session 21): findings on the lease hand-over, uncommitted; see /work/notes/s21-R1-findings.md.
 * Each test here fails on HEAD (the finding) and is meant to pass once it is fixed.
 */
import { acquireLease, emptyConfiguration, releaseLease } from './configuration';
import { handoverCandidate } from './leaseHandover';
import { A, B, D1, T0 } from './testing/fixtures';

describe('R1-F3: a share that never promised is not let go of on request', () => {
  const req = { dataset_id: D1, node_uuid: A, expires: null } as const;
  // A pod on A uses the volume through the CSI driver (a share without release_on_request: "exactly as today").
  const csi = acquireLease(emptyConfiguration, { ...req, holder: 'csi' }, T0).config;
  // The Docker plugin on A then takes its share with release_on_request (its idle leases are on by default).
  const both = acquireLease(csi, { ...req, holder: 'docker', release_on_request: true }, T0);

  it("the Docker plugin's promise does not make the CSI share's lease one its holder lets go of when asked", () => {
    // Today the promise is the whole lease's: every view shows it "released on request" / idle while the pod uses it.
    expect(both.config.leases.get(D1)?.release_on_request).toBeUndefined();
    expect(both.result.release_on_request).toBeUndefined();
  });

  it("once the Docker plugin's share is gone, a request for the CSI share's lease is refused at once (no 5 s wait)", () => {
    const left = releaseLease(both.config, D1, T0, 'docker').config;
    expect(left.leases.get(D1)?.holders).toEqual(['csi']);
    // Nobody will ever answer a request for it (only the Docker plugin answers): a requester waits out the hand-over
    // and is told "is the Docker plugin on <host> running?", and the request stays pending on the lease.
    expect(handoverCandidate(left, D1, B, T0, () => false)).toBeUndefined();
  });
});
