/** `flocker status` naming the nodes the control service holds alive with their state unknown (T1 S0, session 19). */
import { unknownStateLines } from './nodesUnknown';
import { A, node, snap } from './testing/snapshots';

const B = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';

it('names the alive nodes the snapshot does not show, and none that it shows', () => {
  expect(
    unknownStateLines(snap([node()]), [
      { uuid: B, host: 'host-b' },
      { uuid: A, host: 'host-a' },
    ]),
  ).toEqual([
    'node host-b: alive, its state unknown (its dataset agent has not finished a look at its storage backend since it started: BACKEND_UNREACHABLE)',
  ]);
  expect(unknownStateLines(snap([node()]), [{ uuid: A, host: 'host-a' }])).toEqual([]);
});
