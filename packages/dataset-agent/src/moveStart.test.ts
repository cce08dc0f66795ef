import type { DesiredDataset } from './LocalState';
import type { Action } from './LocalState';
import { moveStarts, unmountOnView, type MoveTrigger, type SeenVolume } from './moveStart';

const ME = 'node-me';
const OTHER = 'node-other';
const HERE = 'instance-here';
const THERE = 'instance-there';

function dataset(primary: string, deleted = false): DesiredDataset {
  return { datasetId: 'd', primary, maximumSize: null, deleted };
}

/** Where the one volume of dataset d was last seen: here, there, nowhere (null), or no volume at all. */
type Seen = 'here' | 'there' | 'free' | 'none';

function pick(d: DesiredDataset, seen: Seen, trigger: MoveTrigger): boolean {
  const volumes: SeenVolume[] =
    seen === 'none' ? [] : [{ attachedTo: seen === 'here' ? HERE : seen === 'there' ? THERE : null }];
  return moveStarts([d], trigger, { nodeUuid: ME, instanceId: HERE, volumesOf: () => volumes }).includes('d');
}

describe('moveStarts: which datasets a move starts a worker for before the full look', () => {
  /**
   * Every case: primary (this node, another, deleted), where the volume was last seen, and
   * the trigger (config / released). "x": a worker starts at once; "-": the full look decides.
   */
  const EXPECTED = `
                    here  there  free  none
  mine/config       -     -      x     -
  mine/released     -     x      x     -
  other/config      x     -      -     -
  other/released    -     -      -     -
  deleted/config    -     -      -     -
  deleted/released  -     -      -     -
  `;
  const rows = EXPECTED.trim()
    .split('\n')
    .map((l) => l.trim().split(/\s+/));
  const header = rows[0] as Seen[];
  for (const row of rows.slice(1)) {
    const [who, trigger] = (row[0] ?? '').split('/') as ['mine' | 'other' | 'deleted', MoveTrigger];
    header.forEach((seen, i) => {
      const want = row[i + 1] === 'x';
      it(`${who}, last seen ${seen}, on ${trigger}: ${want ? 'starts at once' : 'waits for the full look'}`, () => {
        const d = who === 'mine' ? dataset(ME) : who === 'other' ? dataset(OTHER) : dataset(ME, true);
        expect(pick(d, seen, trigger)).toBe(want);
      });
    });
  }

  it('moving away: any of several volumes attached here is enough', () => {
    const volumes: SeenVolume[] = [{ attachedTo: null }, { attachedTo: HERE }];
    expect(
      moveStarts([dataset(OTHER)], 'config', { nodeUuid: ME, instanceId: HERE, volumesOf: () => volumes }),
    ).toEqual(['d']);
  });

  it('picks each dataset on its own', () => {
    const seen: Record<string, SeenVolume[]> = {
      away: [{ attachedTo: HERE }],
      idle: [{ attachedTo: HERE }],
      arriving: [{ attachedTo: null }],
    };
    const ds: DesiredDataset[] = [
      { ...dataset(OTHER), datasetId: 'away' },
      { ...dataset(ME), datasetId: 'idle' },
      { ...dataset(ME), datasetId: 'arriving' },
    ];
    expect(moveStarts(ds, 'config', { nodeUuid: ME, instanceId: HERE, volumesOf: (id) => seen[id] ?? [] })).toEqual([
      'away',
      'arriving',
    ]);
  });
});

describe('unmountOnView: the one step a move away takes on the view, without a look', () => {
  const OWN = '/mnt/d';
  const unmount = (mountPath: string, datasetId = 'd'): Action => ({
    kind: 'unmount',
    datasetId,
    blockdeviceId: 'b',
    mountPath,
  });
  const cases: Array<[string, DesiredDataset, Action | undefined, boolean]> = [
    ['moved away, unmount of its own path', dataset(OTHER), unmount(OWN), true],
    ['moved away, unmount of another path (a mount elsewhere)', dataset(OTHER), unmount('/elsewhere'), false],
    ['moved away, unmount of another dataset', dataset(OTHER), unmount(OWN, 'e'), false],
    ['moved away, detach', dataset(OTHER), { kind: 'detach', datasetId: 'd', blockdeviceId: 'b' }, false],
    ['moved away, nothing to do', dataset(OTHER), undefined, false],
    ['deleted, unmount of its own path', dataset(OTHER, true), unmount(OWN), false],
    ['primary here, unmount of its own path (a stacked mount)', dataset(ME), unmount(OWN), false],
  ];
  for (const [name, d, action, want] of cases)
    it(`${name}: ${want ? 'on the view' : 'after a look'}`, () => {
      expect(unmountOnView(d, action, ME, OWN)).toBe(want);
    });
});
