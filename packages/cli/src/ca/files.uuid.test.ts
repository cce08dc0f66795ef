import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { identityFromCommonName, Uuid } from '@flocker/api';
import { createNodeCertificate, initialize } from './files';

/**
 * REVIEW-S25 R3: the node ids `flocker-ca create-node-certificate --uuid` takes are exactly those the API takes (its
 * Uuid schema, lower-cased), so that every certificate it issues names the node the API knows (F1 was this drift).
 */
const ID = '3f9a0c4e-1b2d-4c5e-8f70-9a1b2c3d4e5f';
const INPUTS = [
  ID,
  ID.toUpperCase(),
  '11111111-1111-1111-1111-111111111111',
  '00000000-0000-0000-0000-000000000000',
  'ffffffff-ffff-ffff-ffff-ffffffffffff',
  `{${ID}}`,
  `urn:uuid:${ID}`,
  ID.replace(/-/g, ''),
  ` ${ID}`,
  `${ID}\n`,
  `${ID}0`,
  ID.replace('3', 'g'),
  '3f9a0c4e1-b2d-4c5e-8f70-9a1b2c3d4e5f',
  'not-a-uuid',
  '',
];

describe('flocker-ca node certificates take the ids the API takes', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flocker-ca-uuid-'));
    await initialize('test-cluster', dir);
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it.each(INPUTS.map((input) => [JSON.stringify(input), input]))('%s', async (_, input) => {
    const api = Uuid.safeParse(input);
    // Its own output directory: two spellings of one id are one certificate's file name.
    const out = await mkdtemp(join(dir, 'node-'));
    const made = await createNodeCertificate({ inputPath: dir, outputPath: out, uuid: input }).then(
      (m) => m,
      (e: unknown) => e,
    );
    if (!api.success) {
      expect(made).toMatchObject({ code: 'INVALID_NAME' });
      return;
    }
    expect(made).toMatchObject({ uuid: api.data });
    const { certificate } = made as { certificate: string };
    const subject = new X509Certificate(await readFile(certificate, 'utf8')).subject;
    const cn = /CN=([^\n,]+)/.exec(subject)?.[1] ?? '';
    expect(identityFromCommonName(cn)).toEqual({ kind: 'node', uuid: api.data });
  });
});
