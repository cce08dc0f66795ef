import {
  filterVolumes,
  humanAge,
  listNotice,
  matchesSearch,
  moveTargets,
  rowWindow,
  usedSpace,
  volumeAge,
} from './list';
import { clusterView } from './view';
import { A, B, D1, D2, dataset, mounted, node, snapshot } from '../testing/fixtures';
import type { ControlStatus } from './wire';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');

describe('humanAge / volumeAge (issue 21: AGE only ever said "> 1 min")', () => {
  it('says seconds, minutes, hours and days', () => {
    expect(humanAge(T0, T0 + 12_000)).toBe('12 s');
    expect(humanAge(T0, T0 + 5 * 60_000 + 59_000)).toBe('5 min');
    expect(humanAge(T0, T0 + 3 * 3600_000)).toBe('3 h');
    expect(humanAge(T0, T0 + 2 * 86400_000 + 5)).toBe('2 d');
    expect(humanAge(T0, T0 - 1000)).toBe('0 s');
  });
  it('ages a volume seen appearing from then, and one older than the server at least as old as the server, growing', () => {
    const started = new Date(T0).toISOString();
    expect(volumeAge({ first_seen: new Date(T0 + 60_000).toISOString() }, started, T0 + 90_000).text).toBe('30 s');
    expect(volumeAge({ first_seen: null }, started, T0 + 90_000).text).toBe('≥ 1 min');
    expect(volumeAge({ first_seen: null }, started, T0 + 5 * 3600_000).text).toBe('≥ 5 h');
    expect(volumeAge({ first_seen: null }, started, T0 + 3 * 86400_000).text).toBe('≥ 3 d');
    expect(volumeAge({ first_seen: null }, started, T0).title).toMatch(/no creation time/);
    expect(volumeAge({ first_seen: null }, null, T0).text).toBe('—');
  });
});

describe('search (issue 21)', () => {
  const s = snapshot({
    datasets: [dataset(D1, 'pgdata', A), dataset(D2, 'webcache', B)],
    nodes: [node(A, 'alpha', { manifestations: [mounted(D1)] }), node(B, 'beta')],
  });
  const volumes = clusterView(s).volumes;
  const names = (q: string) => filterVolumes(volumes, q).map((v) => v.name);
  it('matches name, node and state, case-insensitively, every word', () => {
    expect(names('')).toEqual(['pgdata', 'webcache']);
    expect(names('PG')).toEqual(['pgdata']);
    expect(names('beta')).toEqual(['webcache']);
    expect(names('mounted')).toEqual(['pgdata']);
    expect(names('alpha mounted')).toEqual(['pgdata']);
    expect(names('alpha creating')).toEqual([]);
    expect(names(D2.slice(0, 8))).toEqual(['webcache']);
  });
  it('restricts a word to one field with name:, node:, state:', () => {
    expect(names('name:a')).toEqual(['pgdata', 'webcache']);
    expect(names('node:alpha')).toEqual(['pgdata']);
    expect(names('name:alpha')).toEqual([]);
    expect(names('state:creating')).toEqual(['webcache']);
    expect(matchesSearch(volumes[0]!, 'state:')).toBe(true);
  });
});

describe('moveTargets (issue 21: a disabled Move on every row of a one-node cluster)', () => {
  it('offers the other live nodes, none on a one-node cluster or when the others are dead', () => {
    const two = clusterView(snapshot({ datasets: [dataset(D1, 'pgdata', A)] }));
    expect(moveTargets(two.volumes[0]!, two.nodes).map((n) => n.host)).toEqual(['10.0.0.2']);
    const one = clusterView(snapshot({ datasets: [dataset(D1, 'pgdata', A)], nodes: [node(A, 'a')] }));
    expect(moveTargets(one.volumes[0]!, one.nodes)).toEqual([]);
    const dead = clusterView(
      snapshot({ datasets: [dataset(D1, 'pgdata', A)], nodes: [node(A, 'a'), node(B, 'b', { alive: false })] }),
    );
    expect(moveTargets(dead.volumes[0]!, dead.nodes)).toEqual([]);
  });
});

describe('listNotice (issue 21: "No volumes yet" with the control service down)', () => {
  const up: ControlStatus = { url: 'https://c:4523', connected: true, error: null };
  const down: ControlStatus = { url: 'https://c:4523', connected: false, error: 'connect ECONNREFUSED' };
  it('says the control service is unreachable, never "no volumes", when it has no data', () => {
    expect(listNotice(false, 0, 0, down, '')).toEqual({
      kind: 'unreachable',
      message: 'The control service https://c:4523 is unreachable: connect ECONNREFUSED.',
    });
    expect(listNotice(false, 0, 0, null, '')).toEqual({ kind: 'connecting' });
    expect(listNotice(false, 0, 0, up, '')).toEqual({ kind: 'connecting' });
  });
  it('marks the last known data stale when the control service went away, also with no volumes', () => {
    expect(listNotice(true, 3, 3, down, '')).toMatchObject({
      kind: 'stale',
      message: expect.stringMatching(/last known/),
    });
    expect(listNotice(true, 0, 0, down, '')?.kind).toBe('stale');
  });
  it('says "empty" only when connected and there are none; a search matching nothing says so', () => {
    expect(listNotice(true, 0, 0, up, '')).toEqual({ kind: 'empty' });
    expect(listNotice(true, 4, 0, up, 'zzz')).toEqual({ kind: 'no-match', query: 'zzz' });
    expect(listNotice(true, 4, 4, up, '')).toBeNull();
  });
});

describe('rowWindow (issue 21: 1,000 volumes)', () => {
  const heights = Array.from({ length: 1000 }, () => 50);
  it('renders only the rows meeting the viewport plus the overscan, padding the rest', () => {
    expect(rowWindow(heights, 0, 800, 5)).toEqual({ start: 0, end: 21, padTop: 0, padBottom: 979 * 50 });
    expect(rowWindow(heights, 10_000, 800, 5)).toEqual({ start: 195, end: 221, padTop: 195 * 50, padBottom: 779 * 50 });
    expect(rowWindow(heights, 49_900, 800, 5)).toEqual({ start: 993, end: 1000, padTop: 993 * 50, padBottom: 0 });
  });
  it('starts at the first row while the list is below the viewport top, and keeps the total height', () => {
    const w = rowWindow(heights, -300, 800, 0);
    expect(w).toEqual({ start: 0, end: 10, padTop: 0, padBottom: 990 * 50 });
    const mixed = [30, 200, 30, 30, 500, 30];
    const m = rowWindow(mixed, 240, 100, 0);
    expect(m).toEqual({ start: 2, end: 5, padTop: 230, padBottom: 30 });
    expect(m.padTop + mixed.slice(m.start, m.end).reduce((a, b) => a + b, 0) + m.padBottom).toBe(820);
  });
  it('is empty for no rows and past the end', () => {
    expect(rowWindow([], 0, 800, 5)).toEqual({ start: 0, end: 0, padTop: 0, padBottom: 0 });
    expect(rowWindow([50, 50], 5000, 800, 1)).toEqual({ start: 1, end: 2, padTop: 50, padBottom: 0 });
  });
});

describe('usedSpace (issue 21: used space per volume)', () => {
  const GiB = 1024 ** 3;
  it('"used of size" with its fraction, from the mounted manifestation the node measured', () => {
    const s = snapshot({
      datasets: [dataset(D1, 'pg', A, { maximum_size: 10 * GiB }), dataset(D2, 'new', A)],
      nodes: [node(A, '10.0.0.1', { manifestations: [{ ...mounted(D1), used_bytes: 1.5 * GiB }] })],
    });
    const [fresh, pg] = clusterView(s).volumes; // by name
    expect(pg?.used).toBe(1.5 * GiB);
    expect(usedSpace(pg!)).toEqual({ text: '1.5 GiB of 10 GiB', fraction: 0.15 });
    expect(fresh?.used).toBeNull();
    expect(usedSpace(fresh!)).toBeNull();
  });
  it('without a size: the bytes alone; over the size: the bar is full', () => {
    expect(usedSpace({ used: 4096, size: null })).toEqual({ text: '4 KiB used', fraction: null });
    expect(usedSpace({ used: 2 * GiB, size: GiB })?.fraction).toBe(1);
  });
});
