import { releaseRisk } from './safety';
import { clusterView } from './view';
import { A, B, D1, dataset, mounted, node, snapshot } from '../testing/fixtures';
import { CreateVolumeBody, ReleaseLeaseBody } from './wire';

describe('releaseRisk (issue 17: releasing the lease of a volume in use gave no warning)', () => {
  const d1 = dataset(D1, 'pgdata', A);
  it('names the host when a live node holds the lease: a container there uses the volume', () => {
    const s = snapshot({
      datasets: [d1],
      // The Docker plugin's lease (holder docker); one that names no holder is no container's (below).
      leases: [{ dataset_id: D1, node_uuid: A, expires: null, holders: ['docker'] }],
      nodes: [node(A, 'a', { manifestations: [mounted(D1)] }), node(B, 'b')],
    });
    const v = clusterView(s);
    const risk = releaseRisk(v.volumes[0]!, v.nodes);
    expect(risk).toMatch(/^pgdata is in use on a: /);
    expect(risk).toMatch(/data is destroyed when the container stops/);
  });
  it('is none without a lease, or when its holder is dead (failover)', () => {
    const free = clusterView(snapshot({ datasets: [d1] }));
    expect(releaseRisk(free.volumes[0]!, free.nodes)).toBeNull();
    const dead = clusterView(
      snapshot({
        datasets: [d1],
        leases: [{ dataset_id: D1, node_uuid: A, expires: null }],
        nodes: [node(A, 'a', { alive: false }), node(B, 'b')],
      }),
    );
    expect(releaseRisk(dead.volumes[0]!, dead.nodes)).toBeNull();
  });
});

describe('a lease that names no holder (s23 USER-T F1: flocker leases acquire, a Flocker v1 API client)', () => {
  const d1 = dataset(D1, 'pgdata', A);
  const nodes = [node(A, 'a', { manifestations: [mounted(D1)] }), node(B, 'b')];
  it('releasing it asks first, saying who takes such leases, not that a container there uses it (as the CLI)', () => {
    const v = clusterView(
      snapshot({ datasets: [d1], leases: [{ dataset_id: D1, node_uuid: A, expires: null }], nodes }),
    );
    const risk = releaseRisk(v.volumes[0]!, v.nodes);
    expect(risk).toMatch(
      /^pgdata is in use on a: that live node holds a lease that names no holder \(taken by "flocker leases acquire" or a Flocker v1 API client\)/,
    );
    expect(risk).not.toMatch(/container/);
  });
  it("one named by the Docker plugin beside an unnamed acquire is a container's", () => {
    const v = clusterView(
      snapshot({
        datasets: [d1],
        leases: [{ dataset_id: D1, node_uuid: A, expires: null, holders: ['docker'], unnamed_holder: true }],
        nodes,
      }),
    );
    expect(releaseRisk(v.volumes[0]!, v.nodes)).toMatch(/so a container there uses it/);
  });
});

describe("a lease let go of on request (session 21: the Docker plugin keeps an idle volume's lease)", () => {
  const d1 = dataset(D1, 'pgdata', A);
  const nodes = [node(A, 'a'), node(B, 'b')];
  it('the view marks it; releasing it still asks first, saying a move or delete asks the holder instead', () => {
    const idle = clusterView(
      snapshot({
        datasets: [d1],
        leases: [{ dataset_id: D1, node_uuid: A, expires: null, holders: ['docker'], release_on_request: true }],
        nodes,
      }),
    );
    expect(idle.volumes[0]?.lease).toEqual({
      node_uuid: A,
      host: 'a',
      expires: null,
      on_request: 'released on request',
      holders: ['docker'],
    });
    const risk = releaseRisk(idle.volumes[0]!, idle.nodes);
    expect(risk).toMatch(
      /^pgdata is held on a by a lease its holder lets go of when asked while no container there uses it/,
    );
    expect(risk).toMatch(/nothing needs releasing: start the container on the other host/);
    expect(risk).not.toMatch(/delete/);
  });
  it('a request waiting for it shows as such; a plain lease shows as before', () => {
    const asked = clusterView(
      snapshot({
        datasets: [d1],
        leases: [
          {
            dataset_id: D1,
            node_uuid: A,
            expires: null,
            release_on_request: true,
            release_requested: { by: 'api', at: '2026-12-06T15:00:00Z' },
          },
        ],
        nodes,
      }),
    );
    expect(asked.volumes[0]?.lease?.on_request).toBe('release requested');
    const plain = clusterView(
      snapshot({ datasets: [d1], leases: [{ dataset_id: D1, node_uuid: A, expires: null }], nodes }),
    );
    expect(plain.volumes[0]?.lease).toEqual({ node_uuid: A, host: 'a', expires: null });
  });
});

describe('UI request bodies', () => {
  it.each(['', '   ', 'bad name!', 'a', '-x'])("a volume named %p is refused, with the plugin's rule", (name) => {
    const r = CreateVolumeBody.safeParse({ name, size: '1GiB', node: A });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.message).toMatch(/needs a name|not a valid volume name/);
  });
  it('a good name passes', () => {
    expect(CreateVolumeBody.parse({ name: 'pg-data.1', size: '1GiB', node: A }).name).toBe('pg-data.1');
  });
  it('a lease release is not forced unless asked', () => {
    expect(ReleaseLeaseBody.parse({})).toEqual({ force: false });
    expect(ReleaseLeaseBody.parse({ force: true })).toEqual({ force: true });
  });
});
