import type { ClusterDelta, ClusterSnapshot } from '@flocker/api';
import {
  type FollowEvent,
  type FollowMode,
  type FollowOffers,
  initialMode,
  modeAfter,
  viewAfterLine,
  watchRefused,
} from './ClusterFollowerMode';

const offers = (watch: boolean, deltas: boolean): FollowOffers => ({ watch, deltas });
const ALL: FollowOffers = offers(true, true);

describe('initialMode: the best the channel offers', () => {
  it.each<[FollowOffers, FollowMode]>([
    [offers(true, true), 'watch'],
    [offers(false, true), 'deltas'],
    // The watch alone is not used: refetches and the fallback read deltas.
    [offers(true, false), 'whole'],
    [offers(false, false), 'whole'],
  ])('%j -> %s', (o, mode) => {
    expect(initialMode(o)).toBe(mode);
  });
});

describe('modeAfter', () => {
  // Every mode × event, with everything offered: [mode, event, next].
  const table: Array<[FollowMode, FollowEvent, FollowMode]> = [
    ['watch', 'watchRefused', 'deltas'],
    ['watch', 'deltasRefused', 'watch'],
    ['watch', 'readFailed', 'watch'],
    ['deltas', 'watchRefused', 'deltas'],
    ['deltas', 'deltasRefused', 'whole'],
    ['deltas', 'readFailed', 'watch'],
    ['whole', 'watchRefused', 'whole'],
    ['whole', 'deltasRefused', 'whole'],
    ['whole', 'readFailed', 'watch'],
  ];
  it.each(table)('in %s, after %s: %s', (mode, event, next) => {
    expect(modeAfter(mode, event, ALL)).toBe(next);
  });

  it('a failed read asks for the best offered again, whatever was refused before (the service may be upgraded)', () => {
    expect(modeAfter('whole', 'readFailed', offers(false, true))).toBe('deltas');
    expect(modeAfter('deltas', 'readFailed', offers(false, true))).toBe('deltas');
    expect(modeAfter('whole', 'readFailed', offers(false, false))).toBe('whole');
    expect(modeAfter('deltas', 'readFailed', offers(true, false))).toBe('whole');
  });

  it('refusals step down one way at a time: watch -> deltas -> whole', () => {
    let mode = initialMode(ALL);
    const seen = [mode];
    for (const event of ['watchRefused', 'deltasRefused'] as const) seen.push((mode = modeAfter(mode, event, ALL)));
    expect(seen).toEqual(['watch', 'deltas', 'whole']);
  });
});

describe('watchRefused: which failures mean the service has no watch', () => {
  it.each<[number | undefined, boolean]>([
    [404, true],
    [400, true],
    [405, true],
    [0, false], // no answer: the service is away, not old
    [500, false],
    [503, false],
    [401, false],
    [403, false],
    [undefined, false], // not an HTTP failure at all
  ])('%s -> %s', (status, refused) => {
    expect(watchRefused(status)).toBe(refused);
  });
});

describe('viewAfterLine', () => {
  const view = (generation: string, datasets: string[] = []): ClusterSnapshot => ({
    generation,
    configuration_tag: 't',
    datasets: datasets.map((id) => ({ dataset_id: id, primary: 'p', metadata: {}, deleted: false })),
    leases: [],
    nodes: [],
  });
  const delta = (since: string, generation: string, added: string[] = []): ClusterDelta => ({
    delta: true,
    since,
    generation,
    configuration_tag: 't',
    datasets: view(generation, added).datasets,
    removed_datasets: [],
    leases: [],
    removed_leases: [],
    nodes: [],
    removed_nodes: [],
  });

  it('a whole view replaces what was held (or starts the stream)', () => {
    expect(viewAfterLine(null, view('1'))).toEqual({ view: view('1'), delta: false });
    expect(viewAfterLine(view('1', ['a']), view('7', ['b']))).toEqual({ view: view('7', ['b']), delta: false });
  });

  it('a delta for the view held is merged into it', () => {
    expect(viewAfterLine(view('1', ['a']), delta('1', '2', ['b']))).toEqual({
      view: view('2', ['a', 'b']),
      delta: true,
    });
  });

  it('a delta for another view, or with none held, cannot be applied', () => {
    expect(viewAfterLine(view('1'), delta('2', '3'))).toBeUndefined();
    expect(viewAfterLine(null, delta('1', '2'))).toBeUndefined();
  });
});
