/**
 * Review T6 F3 (session 19): strings other parties choose (a node's reported host, any client's metadata, agent error
 * messages, names) reached the admin's terminal byte for byte: OSC 0 retitles the window, CSI 2J clears the screen,
 * SGR 8 hides the rest of a line, OSC 52 writes the clipboard. Text output shows control characters (C0, C1),
 * U+2028/9 and bidi overrides as visible \uXXXX escapes; JSON and YAML keep the values (escaped, parsed back equal).
 */
import type { ClusterSnapshot, FlockerClient } from '@flocker/api';
import { A, B, D1, dataset, node, snapshot } from '@flocker/web-ui/testing';
import { parse } from 'yaml';
import { runCli } from './testing/runCli';

const HOST = 'h\u001b]0;PWNED\u0007\u001b[2J\u001b[31mFAKE';
const NOTE = 'x\u001b]52;c;ZWNobyBwd25lZA==\u0007\u001b[8mhidden\u009b2J\u202eevil\u2066\u2028row\nfake';
// Every character a terminal may act on or reorder by: C0 (line feed aside: our own lines), DEL, C1, U+2028/9, bidi.
// eslint-disable-next-line no-control-regex -- the point of the test
const UNSAFE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;

const s: ClusterSnapshot = snapshot({
  datasets: [dataset(D1, 'db', A, { metadata: { name: 'db', note: NOTE } })],
  nodes: [node(A, HOST, { errors: [{ dataset_id: D1, code: 'X', message: `boom\u001b[2J${HOST}` } as never] })],
});
const client = () =>
  ({
    version: async () => ({ flocker: 'x' }),
    listDatasets: async () => s.datasets,
    waitForCluster: async () => s,
    listEvents: async () => [],
    listNodes: async () => [{ uuid: A, host: HOST }],
    listLeases: async () => [],
    listSnapshots: async () => [],
  }) as unknown as FlockerClient;

describe('text output shows control characters as escapes (T6 F3)', () => {
  for (const argv of [
    ['nodes', 'list'],
    ['volumes', 'list', '-o', 'wide'],
    ['volumes', 'show', 'db'],
    ['describe', 'volume', 'db'],
    ['status'],
  ])
    it(`flocker ${argv.join(' ')}`, async () => {
      const r = await runCli(client, argv);
      expect(`${r.out}\n${r.err}`).not.toMatch(UNSAFE);
      expect(`${r.out}\n${r.err}`).not.toContain('\u001b');
      expect(r.err).toBe('');
    });

  it('shows the escapes where the characters were', async () => {
    const r = await runCli(client, ['volumes', 'show', 'db']);
    expect(r.out).toContain(
      '\\u001b]52;c;ZWNobyBwd25lZA==\\u0007\\u001b[8mhidden\\u009b2J\\u202eevil\\u2066\\u2028row',
    );
    // A line feed inside a value cannot fake a line of its own.
    expect(r.out).not.toMatch(/^fake/m);
    expect((await runCli(client, ['describe', 'volume', 'db'])).out).not.toMatch(/^fake/m);
  });

  it('flocker status: a dead node address with a line feed cannot fake the summary', async () => {
    const dead = node(B, 'h\nVolumes:  9/9 converged', { alive: false });
    const withDead = () =>
      ({ ...client(), waitForCluster: async () => ({ ...s, nodes: [...s.nodes, dead] }) }) as unknown as FlockerClient;
    const r = await runCli(withDead, ['status']);
    expect(r.out).toContain('Not converged:');
    expect(r.out).not.toMatch(/^Volumes: {2}9\/9/m);
  });

  it('keeps the values in JSON and YAML (parsed back equal)', async () => {
    const j = await runCli(client, ['volumes', 'show', 'db', '-o', 'json']);
    expect(j.out).not.toMatch(UNSAFE);
    expect(JSON.stringify(JSON.parse(j.out))).toContain(JSON.stringify(NOTE).slice(1, -1));
    const y = await runCli(client, ['volumes', 'show', 'db', '-o', 'yaml']);
    expect(y.out).not.toMatch(UNSAFE);
    expect((parse(y.out) as { metadata: Record<string, string> }).metadata.note).toBe(NOTE);
  });
});
