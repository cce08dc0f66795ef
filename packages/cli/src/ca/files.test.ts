import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { identityFromCommonName } from '@flocker/api';
import { isSignedBy } from './certificates';
import { createApiCertificate, createControlCertificate, createNodeCertificate, initialize } from './files';

function commonName(pem: string): string {
  const m = /CN=([^\n,]+)/.exec(new X509Certificate(pem).subject);
  return m?.[1] ?? '';
}

describe('flocker-ca files', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flocker-ca-'));
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('creates a CA and certificates with Flocker file names, private keys 0600, all signed by the CA', async () => {
    const opts = { inputPath: dir, outputPath: dir };
    await initialize('test-cluster', dir);
    const control = await createControlCertificate('localhost', opts);
    const node = await createNodeCertificate(opts);
    const user = await createApiCertificate('alice', opts);
    expect(control.certificate).toBe(join(dir, 'control-localhost.crt'));
    expect(node.certificate).toBe(join(dir, `${node.uuid}.crt`));
    expect(user.privateKey).toBe(join(dir, 'alice.key'));
    const ca = await readFile(join(dir, 'cluster.crt'), 'utf8');
    for (const key of ['cluster.key', 'control-localhost.key', `${node.uuid}.key`, 'alice.key']) {
      expect((await stat(join(dir, key))).mode & 0o777).toBe(0o600);
    }
    const controlPem = await readFile(control.certificate, 'utf8');
    const nodePem = await readFile(node.certificate, 'utf8');
    const userPem = await readFile(user.certificate, 'utf8');
    for (const pem of [controlPem, nodePem, userPem]) expect(isSignedBy(pem, ca)).toBe(true);
    expect(identityFromCommonName(commonName(controlPem))).toEqual({ kind: 'control' });
    expect(identityFromCommonName(commonName(nodePem))).toEqual({ kind: 'node', uuid: node.uuid });
    expect(identityFromCommonName(commonName(userPem))).toEqual({ kind: 'user', name: 'alice' });
    expect(new X509Certificate(controlPem).checkHost('localhost')).toBe('localhost');
    expect(new X509Certificate(controlPem).checkIP('127.0.0.1')).toBe('127.0.0.1');
  });

  it('supports RSA keys', async () => {
    await initialize('rsa-cluster', dir, { keyType: 'rsa' });
    const user = await createApiCertificate('bob', { inputPath: dir, outputPath: dir, keyType: 'rsa' });
    const pem = await readFile(user.certificate, 'utf8');
    expect(new X509Certificate(pem).publicKey.asymmetricKeyType).toBe('rsa');
    expect(isSignedBy(pem, await readFile(join(dir, 'cluster.crt'), 'utf8'))).toBe(true);
  });

  it('refuses to overwrite, rejects bad names, and explains a missing CA', async () => {
    await initialize('c', dir);
    await expect(initialize('c', dir)).rejects.toMatchObject({ code: 'CA_EXISTS' });
    await createApiCertificate('alice', { inputPath: dir, outputPath: dir });
    await expect(createApiCertificate('alice', { inputPath: dir, outputPath: dir })).rejects.toMatchObject({
      code: 'FILE_EXISTS',
    });
    await expect(createApiCertificate('../etc/passwd', { inputPath: dir, outputPath: dir })).rejects.toMatchObject({
      code: 'INVALID_NAME',
    });
    await expect(createNodeCertificate({ inputPath: dir, outputPath: dir, uuid: 'not-a-uuid' })).rejects.toMatchObject({
      code: 'INVALID_NAME',
    });
    await expect(createApiCertificate('x', { inputPath: join(dir, 'nowhere'), outputPath: dir })).rejects.toMatchObject(
      { code: 'CA_MISSING' },
    );
  });

  it('a certificate from another CA is not signed by this one', async () => {
    const other = await mkdtemp(join(tmpdir(), 'flocker-ca-other-'));
    try {
      await initialize('one', dir);
      await initialize('two', other);
      const u = await createApiCertificate('eve', { inputPath: other, outputPath: other });
      expect(isSignedBy(await readFile(u.certificate, 'utf8'), await readFile(join(dir, 'cluster.crt'), 'utf8'))).toBe(
        false,
      );
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });
});
