import { ComposeRequest, ContainerConfiguration, Environment, parseApplicationFile } from './containers';
import { CreateDatasetRequest, CreateLeaseRequest, findProtoKey, Metadata, NodeReport, Uuid } from './schemas';

const LOWER = '3f9a0c4e-1b2d-4c5e-8f70-9a1b2c3d4e5f';

describe('UUIDs are canonical (lower case) after every parse', () => {
  it.each([
    ['upper case', LOWER.toUpperCase()],
    ['mixed case', '3F9a0C4e-1B2d-4C5e-8F70-9a1B2c3D4e5F'],
    ['lower case', LOWER],
  ])('%s parses to lower case', (_name, input) => {
    expect(Uuid.parse(input)).toBe(LOWER);
    expect(CreateDatasetRequest.parse({ primary: input, dataset_id: input })).toEqual({
      primary: LOWER,
      dataset_id: LOWER,
    });
    expect(CreateLeaseRequest.parse({ dataset_id: input, node_uuid: input, expires: null })).toMatchObject({
      dataset_id: LOWER,
      node_uuid: LOWER,
    });
    expect(
      ContainerConfiguration.parse({
        name: 'web',
        node_uuid: input,
        image: 'nginx',
        volumes: [{ dataset_id: input, mountpoint: '/d' }],
      }),
    ).toMatchObject({
      node_uuid: LOWER,
      volumes: [{ dataset_id: LOWER }],
    });
  });

  it.each([
    ['braces', `{${LOWER}}`],
    ['urn', `urn:uuid:${LOWER}`],
    ['no dashes', LOWER.replace(/-/g, '')],
    ['surrounding space', ` ${LOWER}`],
  ])('other forms are refused (%s)', (_name, input) => {
    expect(Uuid.safeParse(input).success).toBe(false);
  });

  it('a node report: uuid, dataset ids, and UUID-shaped era and instance ids are lower-cased; other ids kept', () => {
    const r = NodeReport.parse({
      uuid: LOWER.toUpperCase(),
      era: LOWER.toUpperCase(),
      host: 'h',
      instance_id: LOWER.toUpperCase(),
      backend: 'loopback',
      manifestations: [{ dataset_id: LOWER.toUpperCase(), blockdevice_id: 'Vol-A', size: 1, status: 'attached' }],
      volumes: [
        { blockdevice_id: 'Vol-A', dataset_id: LOWER.toUpperCase(), size: 1, attached_to: LOWER.toUpperCase() },
      ],
    });
    expect(r).toMatchObject({
      uuid: LOWER,
      era: LOWER,
      instance_id: LOWER,
      manifestations: [{ dataset_id: LOWER, blockdevice_id: 'Vol-A' }],
    });
    expect(r.volumes?.[0]).toMatchObject({ dataset_id: LOWER, attached_to: LOWER });
    const ebs = NodeReport.parse({
      uuid: LOWER,
      era: 'Boot-1',
      host: 'h',
      instance_id: 'i-0ABC',
      backend: 'aws',
      manifestations: [],
    });
    expect(ebs).toMatchObject({ era: 'Boot-1', instance_id: 'i-0ABC' });
  });
});

describe('keys that reach the prototype are refused, not dropped', () => {
  const withKey = (key: string): unknown => JSON.parse(`{"${key}": "x", "ok": "y"}`);

  it.each(['constructor', 'prototype'])('metadata key %s: refused with a message naming the reserved keys', (key) => {
    const r = Metadata.safeParse(withKey(key));
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.message).toMatch(/reserved/);
    expect(CreateDatasetRequest.safeParse({ primary: LOWER, metadata: withKey(key) }).success).toBe(false);
  });

  it('__proto__, which zod records skip silently, is found wherever it is (the control service refuses the body)', () => {
    expect(findProtoKey(JSON.parse(`{"primary": "${LOWER}", "metadata": {"__proto__": "x"}}`))).toEqual([
      'metadata',
      '__proto__',
    ]);
    expect(findProtoKey(JSON.parse('{"a": [{"b": {"__proto__": {"polluted": true}}}]}'))).toEqual([
      'a',
      0,
      'b',
      '__proto__',
    ]);
    expect(findProtoKey(JSON.parse('{"\\u005f_proto__": 1}'))).toEqual(['__proto__']);
    expect(findProtoKey(JSON.parse('{"proto": {"constructor": "x"}}'))).toBeUndefined();
    expect(findProtoKey([1, 'a', null])).toBeUndefined();
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('ordinary keys that merely contain the words are kept', () => {
    expect(Metadata.parse({ my_constructor: 'a', proto: 'b' })).toEqual({ my_constructor: 'a', proto: 'b' });
  });

  it.each(['constructor', 'prototype'])(
    'environment names, compose files and Compose environment lists (%s)',
    (key) => {
      expect(Environment.safeParse(withKey(key)).success).toBe(false);
      expect(ComposeRequest.safeParse({ applications: withKey(key), deployment: {} }).success).toBe(false);
      expect(ComposeRequest.safeParse({ applications: {}, deployment: withKey(key) }).success).toBe(false);
      expect(parseApplicationFile({ services: { web: { image: 'nginx', environment: [`${key}=1`] } } }).ok).toBe(false);
      expect(parseApplicationFile({ services: { web: { image: 'nginx', environment: ['__proto__=1'] } } }).ok).toBe(
        false,
      );
    },
  );
});
