import fc from 'fast-check';
import { calculateChanges } from './calculateChanges';
import type { Action, DecisionContext, DiscoveredVolume, LocalState } from './LocalState';
import { stateAfter } from './stateAfter';

const ME = '11111111-1111-4111-8111-111111111111';
const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const OTHER_DS = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
const MiB = 1024 * 1024;
const ctx: DecisionContext = {
  nodeUuid: ME,
  mountRoot: '/flocker',
  defaultSize: 64 * MiB,
  allocationUnit: MiB,
  canResize: true,
};
const desired = {
  datasets: [{ datasetId: DS, primary: ME, maximumSize: 64 * MiB, deleted: false }],
  nodes: [{ uuid: ME, instanceId: 'i-me', alive: true }],
};
const created = { blockdeviceId: 'vol-1', datasetId: DS, size: 64 * MiB, attachedTo: null };
const bystander: DiscoveredVolume = { blockdeviceId: 'vol-9', datasetId: OTHER_DS, size: MiB, attachedTo: 'i-x' };
const blank = (id: string) => id === 'vol-1';
const nothing = () => false;

function next(local: LocalState): Action | undefined {
  return calculateChanges(desired, local, ctx)[0];
}

describe('stateAfter: the next step of a new volume decided on what the last one answered', () => {
  it('walks create -> attach -> format -> mount without a look, leaving other datasets alone', () => {
    let local: LocalState = { instanceId: 'i-me', volumes: [bystander] };
    const kinds: string[] = [];
    const results = { create: { created }, attach: { devicePath: '/dev/loop7' }, format: {} } as const;
    for (let action = next(local); action !== undefined && action.kind !== 'mount'; action = next(local)) {
      kinds.push(action.kind);
      const after = stateAfter(local, action, results[action.kind as keyof typeof results], blank);
      expect(after).toBeDefined();
      local = after!;
    }
    expect(kinds).toEqual(['create', 'attach', 'format']);
    expect(next(local)).toMatchObject({ kind: 'mount', blockdeviceId: 'vol-1', devicePath: '/dev/loop7' });
    expect(local.volumes).toContainEqual(bystander);
  });

  it('walks create (a claimed spare, issue 23) -> attach -> mount without a look and without a format', () => {
    let local: LocalState = { instanceId: 'i-me', volumes: [bystander] };
    const kinds: string[] = [];
    const results = { create: { created }, attach: { devicePath: '/dev/loop7' } } as const;
    const claimed = (id: string): boolean => id === 'vol-1';
    for (let action = next(local); action !== undefined && action.kind !== 'mount'; action = next(local)) {
      kinds.push(action.kind);
      const after = stateAfter(local, action, results[action.kind as keyof typeof results], () => false, claimed);
      expect(after).toBeDefined();
      local = after!;
    }
    expect(kinds).toEqual(['create', 'attach']);
    expect(next(local)).toMatchObject({ kind: 'mount', blockdeviceId: 'vol-1', devicePath: '/dev/loop7' });
    // Neither blank nor claimed: a look decides.
    const unattached: LocalState = { instanceId: 'i-me', volumes: [created] };
    const attach = { kind: 'attach', datasetId: DS, blockdeviceId: 'vol-1' } as const;
    expect(
      stateAfter(
        unattached,
        attach,
        { devicePath: '/dev/loop7' },
        () => false,
        () => false,
      ),
    ).toBeUndefined();
  });

  it('walks create (a spare the claim attached here, issue 23) -> mount: no attach, no format, no look', () => {
    const claimed = (id: string): boolean => id === 'vol-1';
    const before: LocalState = { instanceId: 'i-me', volumes: [bystander] };
    const create = next(before);
    expect(create).toMatchObject({ kind: 'create' });
    const attachedHere = { ...created, attachedTo: 'i-me' };
    const after = stateAfter(
      before,
      create!,
      { created: attachedHere, devicePath: '/dev/loop7' },
      () => false,
      claimed,
    );
    expect(after).toBeDefined();
    expect(next(after!)).toMatchObject({ kind: 'mount', blockdeviceId: 'vol-1', devicePath: '/dev/loop7' });
    expect(after!.volumes).toContainEqual(bystander);
    // Attached, but no device named, not claimed, or attached elsewhere: a look decides.
    for (const [result, isClaimed] of [
      [{ created: attachedHere }, claimed],
      [{ created: attachedHere, devicePath: '/dev/loop7' }, () => false],
      [{ created: { ...created, attachedTo: 'i-other' }, devicePath: '/dev/loop7' }, claimed],
    ] as const)
      expect(stateAfter(before, create!, result, () => false, isClaimed)).toBeUndefined();
  });

  it('an attach takes the size the backend answered (e2e dataset-agent: a move decided on a view older than a resize mounted without growing the file system)', () => {
    const unattached: LocalState = { instanceId: 'i-me', volumes: [created] };
    const attach = { kind: 'attach', datasetId: DS, blockdeviceId: 'vol-1' } as const;
    const formatted = (id: string) => id === 'vol-1';
    const after = stateAfter(unattached, attach, { devicePath: '/dev/loop7', size: 128 * MiB }, nothing, formatted);
    expect(after?.volumes[0]).toMatchObject({ size: 128 * MiB, attachedTo: 'i-me', devicePath: '/dev/loop7' });
    expect(next(after!)).toMatchObject({ kind: 'mount', size: 128 * MiB });
    // No size answered: the size as last seen.
    expect(stateAfter(unattached, attach, { devicePath: '/dev/loop7' }, nothing, formatted)?.volumes[0]?.size).toBe(
      64 * MiB,
    );
  });

  it('knows nothing when a step found its work already done, or for a volume it did not create', () => {
    const none: LocalState = { instanceId: 'i-me', volumes: [] };
    const unattached: LocalState = { instanceId: 'i-me', volumes: [created] };
    // create found a volume already there: it answers without `created`.
    expect(stateAfter(none, { kind: 'create', datasetId: DS, size: 64 * MiB }, {}, blank)).toBeUndefined();
    // attach found it attached already (no device answered), or the volume is not known blank.
    expect(
      stateAfter(unattached, { kind: 'attach', datasetId: DS, blockdeviceId: 'vol-1' }, {}, blank),
    ).toBeUndefined();
    expect(
      stateAfter(
        unattached,
        { kind: 'attach', datasetId: DS, blockdeviceId: 'vol-1' },
        { devicePath: '/dev/loop7' },
        nothing,
      ),
    ).toBeUndefined();
    // format of a device other than the one last seen, or of a mounted one.
    const attached: LocalState = {
      instanceId: 'i-me',
      volumes: [{ ...created, attachedTo: 'i-me', devicePath: '/dev/loop7', hasFilesystem: false, mountPoints: [] }],
    };
    expect(
      stateAfter(
        attached,
        { kind: 'format', datasetId: DS, blockdeviceId: 'vol-1', devicePath: '/dev/loop8' },
        {},
        blank,
      ),
    ).toBeUndefined();
    const mounted: LocalState = { instanceId: 'i-me', volumes: [{ ...attached.volumes[0]!, mountPoints: ['/x'] }] };
    expect(
      stateAfter(
        mounted,
        { kind: 'format', datasetId: DS, blockdeviceId: 'vol-1', devicePath: '/dev/loop7' },
        {},
        blank,
      ),
    ).toBeUndefined();
  });

  it('never predicts after any other kind of step', () => {
    const others: Action[] = [
      // The last step: the look after it confirms the goal.
      {
        kind: 'mount',
        datasetId: DS,
        blockdeviceId: 'vol-1',
        devicePath: '/dev/loop7',
        mountPath: `/flocker/${DS}`,
        size: 64 * MiB,
      },
      { kind: 'unmount', datasetId: DS, blockdeviceId: 'vol-1', mountPath: `/flocker/${DS}` },
      { kind: 'detach', datasetId: DS, blockdeviceId: 'vol-1' },
      { kind: 'forceDetach', datasetId: DS, blockdeviceId: 'vol-1', fromInstance: 'i-x' },
      { kind: 'destroy', datasetId: DS, blockdeviceId: 'vol-1', detachFirst: true },
      { kind: 'resize', datasetId: DS, blockdeviceId: 'vol-1', devicePath: '/dev/loop7', size: 128 * MiB },
    ];
    const local: LocalState = {
      instanceId: 'i-me',
      volumes: [{ ...created, attachedTo: 'i-me', devicePath: '/dev/loop7', hasFilesystem: true, mountPoints: [] }],
    };
    for (const action of others)
      expect(stateAfter(local, action, { created, devicePath: '/dev/loop7' }, blank)).toBeUndefined();
  });

  it('a prediction only ever changes the acted-on volume, and never repeats the action it follows', () => {
    const volume = fc.record({
      blockdeviceId: fc.constantFrom('vol-1', 'vol-2', 'vol-9'),
      datasetId: fc.constantFrom(DS, OTHER_DS),
      size: fc.constant(64 * MiB),
      attachedTo: fc.constantFrom(null, 'i-me', 'i-x'),
    });
    fc.assert(
      fc.property(fc.array(volume, { maxLength: 3 }), fc.boolean(), (volumes, known) => {
        const local: LocalState = { instanceId: 'i-me', volumes };
        const action = next(local);
        if (action === undefined) return;
        const result = { created, devicePath: '/dev/loop7' };
        const after = stateAfter(local, action, result, () => known);
        if (after === undefined) return;
        expect(after.volumes.filter((v) => v.datasetId !== DS)).toEqual(volumes.filter((v) => v.datasetId !== DS));
        expect(next(after)).not.toEqual(action);
      }),
    );
  });
});
