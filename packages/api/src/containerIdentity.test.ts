import { containerConfigId } from './containerIdentity';
import { ContainerConfiguration, ContainerReport, ContainerState } from './containers';

const NODE = '3f9a0c4e-1b2d-4c5e-8f70-9a1b2c3d4e5f';
const base = ContainerConfiguration.parse({ name: 'db', node_uuid: NODE, image: 'tiny' });

describe('containerConfigId', () => {
  test('is the same for the same configuration, whatever the order of its members', () => {
    const reordered = ContainerConfiguration.parse({
      environment: { B: '2', A: '1' },
      image: 'tiny',
      node_uuid: NODE,
      name: 'db',
    });
    const ordered = ContainerConfiguration.parse({
      name: 'db',
      node_uuid: NODE,
      image: 'tiny',
      environment: { A: '1', B: '2' },
    });
    expect(containerConfigId(reordered)).toBe(containerConfigId(ordered));
    expect(containerConfigId(base)).toMatch(/^[0-9a-f]{16}$/);
  });

  test('differs for a change of only the command, ports, environment or restart policy', () => {
    const id = containerConfigId(base);
    expect(containerConfigId({ ...base, command_line: ['sleep', '1'] })).not.toBe(id);
    expect(containerConfigId({ ...base, ports: [{ internal: 80, external: 8080 }] })).not.toBe(id);
    expect(containerConfigId({ ...base, environment: { A: '1' } })).not.toBe(id);
    expect(containerConfigId({ ...base, restart_policy: { name: 'always' } })).not.toBe(id);
    expect(containerConfigId({ ...base, image: 'other' })).not.toBe(id);
  });

  test('leaves out the node (the report names it)', () => {
    expect(containerConfigId({ ...base, node_uuid: '4f9a0c4e-1b2d-4c5e-8f70-9a1b2c3d4e5f' })).toBe(
      containerConfigId(base),
    );
  });
});

describe('config and reported_at in the container schemas (additive, optional)', () => {
  test('a report and a state with them parse, and without them as before', () => {
    const c = { name: 'db', image: 'tiny', running: true };
    expect(ContainerReport.parse({ containers: [{ ...c, config: 'abcdef0123456789' }] })).toEqual({
      containers: [{ ...c, config: 'abcdef0123456789' }],
    });
    expect(ContainerReport.parse({ containers: [c] })).toEqual({ containers: [c] });
    const s = { ...c, node_uuid: NODE };
    const at = '2026-12-06T05:00:00.000Z';
    expect(ContainerState.parse({ ...s, config: 'abcdef0123456789', reported_at: at })).toEqual({
      ...s,
      config: 'abcdef0123456789',
      reported_at: at,
    });
    expect(ContainerState.parse(s)).toEqual(s);
  });
});
