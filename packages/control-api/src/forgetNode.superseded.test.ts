/**
 * Review FR finding 9 (session 17), the other half: an identity superseded by another node's report of the same
 * compute instance (the host's agent reinstalled under a new UUID) stayed in node_identities.json for ever, and after
 * each restart the old UUID was a ghost carrying the live node's instance. Recording a node's identity now drops any
 * other identity naming its instance, in the same write.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import winston from 'winston';
import { FileConfigurationStore, NODE_IDENTITIES_FILE, type NodeIdentity } from './ConfigurationStore';
import { ControlState } from './ControlState';
import { A, B, C, T0, letterReport as report } from './testing/fixtures';

const T = 10_000;
let t = T0;
let dir = '';
let state: ControlState | undefined;

async function open(): Promise<ControlState> {
  await state?.close();
  state = await ControlState.open({
    store: new FileConfigurationStore(dir),
    nodeTimeoutMs: T,
    logger: winston.createLogger({ silent: true }),
    now: () => t,
    livenessCheckMs: 3_600_000,
  });
  return state;
}

const stored = (): NodeIdentity[] =>
  (JSON.parse(readFileSync(path.join(dir, NODE_IDENTITIES_FILE), 'utf8')) as { nodes: NodeIdentity[] }).nodes;

beforeEach(() => {
  t = T0;
  dir = mkdtempSync(path.join(tmpdir(), 'flocker-superseded-'));
});
afterEach(async () => {
  await state?.close();
  state = undefined;
  rmSync(dir, { recursive: true, force: true });
});

it('a new UUID reporting an instance another identity names supersedes it: no ghost of the old one', async () => {
  const s = await open();
  await s.report(report(A));
  await s.report(report(B));
  t += 100_000;
  // A's host, its agent reinstalled: a new UUID (C) on the same compute instance (i-a).
  const r = await open();
  await r.report(report(C, { host: 'host-a', instance_id: 'i-a' }));
  expect(stored().map((n) => [n.uuid, n.instance_id])).toEqual([
    [B, 'i-b'],
    [C, 'i-a'],
  ]);
  t += 100_000;
  const again = await open();
  t += T + 1;
  await again.report(report(C, { host: 'host-a', instance_id: 'i-a' }));
  await again.checkLiveness();
  // B (retired meanwhile) is a ghost as before; A, superseded, is not.
  expect(again.nodeViews.ghosts).toEqual(new Set([B]));
});
