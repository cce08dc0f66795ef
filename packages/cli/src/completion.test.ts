import { A, B, D1, D2, dataset, node, snapshot } from '@flocker/web-ui/testing';
import { completionCandidates, completionKind } from './completion';

describe('completionKind', () => {
  it.each([
    [['volumes', 'show', ''], 'volume'],
    [['volumes', 'show', 'pg'], 'volume'],
    [['volumes', 'move', 'pgdata', ''], 'node'],
    [['volumes', 'create', 'x', '--node', '10.'], 'node'],
    [['--control-url', 'https://c:4523', 'volumes', 'destroy', ''], 'volume'],
    [['volumes', 'clone', 'x', '--snapshot', ''], 'snapshot'],
    [['volumes', 'clone', 'x', '--volume', ''], 'volume'],
    [['volumes', 'list', '--sort', 'size', 'pg'], 'volume'],
    [['describe', 'volume', ''], 'volume'],
    [['leases', 'release', ''], 'volume'],
    [['snapshots', 'rm', ''], 'snapshot'],
    [['containers', 'show', 'w'], 'container'],
  ])('%j: %s', (words, kind) => expect(completionKind(words)).toBe(kind));

  it.each([
    [[]],
    [['']],
    [['volumes', '']],
    [['volumes', 'show', '--']],
    [['volumes', 'show', 'pgdata', '']],
    [['volumes', 'create', '']],
    [['status', '']],
  ])('%j: not a name', (words) => expect(completionKind(words)).toBeUndefined());
});

describe('completionCandidates', () => {
  const data = {
    cluster: snapshot({
      datasets: [dataset(D1, 'pgdata', A), dataset(D2, 'old', A, { deleted: true })],
      nodes: [node(A, '10.0.0.1'), node(B, 'fe80::1')],
    }),
    snapshots: [],
    containers: [],
  };
  it('live volume names by prefix', () => {
    expect(completionCandidates('volume', data, 'p', false)).toEqual(['pgdata']);
    expect(completionCandidates('volume', data, 'o', false)).toEqual([]);
  });
  it("node addresses; zsh gets ':' escaped", () => {
    expect(completionCandidates('node', data, '', false)).toEqual(['10.0.0.1', 'fe80::1']);
    expect(completionCandidates('node', data, 'fe', true)).toEqual(['fe80\\:\\:1']);
  });
  it('offers no name holding a control character or a line break (review T6 F3: the shell prints candidates raw)', () => {
    const hostile = {
      ...data,
      cluster: snapshot({
        datasets: [dataset(D1, 'pg\u001b]52;c;eA==\u0007', A), dataset(D2, 'pg\nfake', A)],
        nodes: [node(A, 'h\u001b[2J'), node(B, '10.0.0.2')],
      }),
    };
    expect(completionCandidates('volume', hostile, '', false)).toEqual([]);
    expect(completionCandidates('node', hostile, '', false)).toEqual(['10.0.0.2']);
  });
});
