/** Reading and writing certificate files the way Flocker users know them. */
import { constants } from 'node:fs';
import { mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { ApiUserName, CONTROL_COMMON_NAME, nodeCommonName, userCommonName, Uuid } from '@flocker/api';
import { createClusterCa, issueCertificate, type KeyType, type PemPair, type Validity } from './certificates';

export class CaError extends Error {
  constructor(
    readonly code: 'CA_EXISTS' | 'CA_MISSING' | 'FILE_EXISTS' | 'INVALID_NAME',
    message: string,
  ) {
    super(message);
    this.name = 'CaError';
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Write a file that must not exist yet, atomically, with the given mode. */
async function writeNew(path: string, contents: string, mode: number): Promise<void> {
  const tmp = `${path}.${randomUUID()}.tmp`;
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
  try {
    await fh.writeFile(contents);
    await fh.sync();
  } finally {
    await fh.close();
  }
  if (await exists(path)) {
    await unlink(tmp);
    throw new CaError('FILE_EXISTS', `${path} already exists; refusing to overwrite it`);
  }
  await rename(tmp, path);
}

async function writePair(
  dir: string,
  base: string,
  pem: PemPair,
): Promise<{ certificate: string; privateKey: string }> {
  const certificate = join(dir, `${base}.crt`);
  const privateKey = join(dir, `${base}.key`);
  for (const p of [certificate, privateKey]) {
    if (await exists(p)) throw new CaError('FILE_EXISTS', `${p} already exists; refusing to overwrite it`);
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeNew(privateKey, pem.privateKey, 0o600);
  await writeNew(certificate, pem.certificate, 0o644);
  return { certificate, privateKey };
}

export async function loadCa(inputPath: string): Promise<PemPair> {
  const certificate = join(inputPath, 'cluster.crt');
  const key = join(inputPath, 'cluster.key');
  try {
    return { certificate: await readFile(certificate, 'utf8'), privateKey: await readFile(key, 'utf8') };
  } catch {
    throw new CaError(
      'CA_MISSING',
      `no certificate authority in ${inputPath} (need cluster.crt and cluster.key); create one with "flocker-ca initialize <cluster-name>" or pass --inputpath`,
    );
  }
}

export interface CommonOptions extends Validity {
  inputPath: string;
  outputPath: string;
  keyType?: KeyType;
}

export async function initialize(
  clusterName: string,
  outputPath: string,
  options: { keyType?: KeyType } & Validity = {},
) {
  if (!/^[^\s/][^/]{0,63}$/.test(clusterName)) {
    throw new CaError(
      'INVALID_NAME',
      'the cluster name must be 1-64 characters, without "/" and not starting with a space',
    );
  }
  if (await exists(join(outputPath, 'cluster.key'))) {
    throw new CaError(
      'CA_EXISTS',
      `${join(outputPath, 'cluster.key')} already exists; this directory already has a certificate authority`,
    );
  }
  const ca = await createClusterCa(clusterName, options);
  const files = await writePair(outputPath, 'cluster', ca.pem);
  return { ...files, clusterUuid: ca.clusterUuid };
}

export async function createControlCertificate(hostname: string, options: CommonOptions) {
  if (!/^[A-Za-z0-9.:-]{1,253}$/.test(hostname)) {
    throw new CaError('INVALID_NAME', `"${hostname}" is not a host name or IP address`);
  }
  const ca = await loadCa(options.inputPath);
  const pem = await issueCertificate(ca, {
    commonName: CONTROL_COMMON_NAME,
    role: 'control',
    subjectAltNames: [hostname, ...(hostname === 'localhost' ? ['127.0.0.1', '::1'] : [])],
    ...options,
  });
  return writePair(options.outputPath, `control-${hostname}`, pem);
}

export async function createNodeCertificate(options: CommonOptions & { uuid?: string }) {
  // The API's rule (any hex 8-4-4-4-12, lower-cased), so that the node this certificate names is one the API takes.
  const parsed = Uuid.safeParse(options.uuid ?? randomUUID());
  if (!parsed.success) throw new CaError('INVALID_NAME', `"${options.uuid ?? ''}" is not a UUID`);
  const uuid = parsed.data;
  const ca = await loadCa(options.inputPath);
  const pem = await issueCertificate(ca, { commonName: nodeCommonName(uuid), role: 'node', ...options });
  return { ...(await writePair(options.outputPath, uuid, pem)), uuid };
}

export async function createApiCertificate(username: string, options: CommonOptions) {
  const parsed = ApiUserName.safeParse(username);
  if (!parsed.success) throw new CaError('INVALID_NAME', parsed.error.issues[0]?.message ?? 'invalid user name');
  const ca = await loadCa(options.inputPath);
  const pem = await issueCertificate(ca, { commonName: userCommonName(username), role: 'user', ...options });
  return writePair(options.outputPath, username, pem);
}
