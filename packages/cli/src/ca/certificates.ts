/**
 * X.509 certificates for a Flocker cluster: one CA per cluster; the control
 * service, every node and every API user get a certificate signed by it.
 * The subject's common name says who the holder is (see identityFromCommonName
 * in @flocker/api); the organisation carries the cluster's UUID, as in Flocker.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, randomBytes, randomUUID, webcrypto, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';

x509.cryptoProvider.set(webcrypto);

export type KeyType = 'ecdsa' | 'rsa';

type SignAlgorithm = (EcKeyGenParams & EcdsaParams) | RsaHashedKeyGenParams;
interface EcKeyGenParams {
  name: string;
  namedCurve: string;
}
interface EcdsaParams {
  hash: string;
}
interface RsaHashedKeyGenParams {
  name: string;
  modulusLength: number;
  publicExponent: Uint8Array;
  hash: string;
}

function algorithm(keyType: KeyType): SignAlgorithm {
  return keyType === 'ecdsa'
    ? { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' }
    : { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' };
}

export interface PemPair {
  certificate: string;
  privateKey: string;
}

export interface Validity {
  notBefore?: Date;
  notAfter?: Date;
}

const DAY = 86_400_000;

function serial(): string {
  // Positive 127-bit serial: a clear top bit keeps the DER integer positive.
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f;
  return b.toString('hex');
}

async function exportKey(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })
    .export({ format: 'pem', type: 'pkcs8' })
    .toString();
}

async function importKey(pem: string, certificate: x509.X509Certificate): Promise<webcrypto.CryptoKey> {
  const der = createPrivateKey(pem).export({ format: 'der', type: 'pkcs8' });
  const alg = certificate.publicKey.algorithm as webcrypto.KeyAlgorithm & { namedCurve?: string };
  const params =
    alg.name === 'ECDSA'
      ? { name: 'ECDSA', namedCurve: alg.namedCurve ?? 'P-256' }
      : { name: alg.name, hash: 'SHA-256' };
  return webcrypto.subtle.importKey('pkcs8', der, params, false, ['sign']);
}

/** Escape a value for an X.500 name string. */
function rdn(value: string): string {
  return value.replace(/([,+"\\<>;=])/g, '\\$1');
}

export interface ClusterCa {
  clusterName: string;
  clusterUuid: string;
  pem: PemPair;
}

export async function createClusterCa(
  clusterName: string,
  options: { keyType?: KeyType } & Validity = {},
): Promise<ClusterCa> {
  const alg = algorithm(options.keyType ?? 'ecdsa');
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const clusterUuid = randomUUID();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${rdn(clusterName)}, O=${clusterUuid}, OU=flocker-ca`,
    notBefore: options.notBefore ?? new Date(Date.now() - 60_000),
    notAfter: options.notAfter ?? new Date(Date.now() + 20 * 365 * DAY),
    signingAlgorithm: alg,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return {
    clusterName,
    clusterUuid,
    pem: { certificate: cert.toString('pem'), privateKey: await exportKey(keys.privateKey) },
  };
}

export type CertificateRole = 'control' | 'node' | 'user';

export interface IssueRequest extends Validity {
  commonName: string;
  role: CertificateRole;
  /** DNS names or IP addresses the certificate is valid for (server certificates). */
  subjectAltNames?: string[];
  keyType?: KeyType;
}

/** Issues a certificate signed by the CA for a new key pair. */
export async function issueCertificate(ca: PemPair, request: IssueRequest): Promise<PemPair> {
  const caCert = new x509.X509Certificate(ca.certificate);
  const caKey = await importKey(ca.privateKey, caCert);
  const alg = algorithm(request.keyType ?? 'ecdsa');
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const org = caCert.subjectName.getField('O')[0] ?? '';
  const usages =
    request.role === 'control'
      ? [x509.ExtendedKeyUsage.serverAuth]
      : request.role === 'node'
        ? [x509.ExtendedKeyUsage.clientAuth, x509.ExtendedKeyUsage.serverAuth]
        : [x509.ExtendedKeyUsage.clientAuth];
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
    new x509.ExtendedKeyUsageExtension(usages, false),
    await x509.AuthorityKeyIdentifierExtension.create(caCert, false),
  ];
  const sans = request.subjectAltNames ?? [];
  if (sans.length > 0) {
    extensions.push(
      new x509.SubjectAlternativeNameExtension(
        sans.map((s) => (isIP(s) ? { type: 'ip' as const, value: s } : { type: 'dns' as const, value: s })),
      ),
    );
  }
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${rdn(request.commonName)}, O=${rdn(org)}`,
    issuer: caCert.subject,
    notBefore: request.notBefore ?? new Date(Date.now() - 60_000),
    notAfter: request.notAfter ?? new Date(Date.now() + 5 * 365 * DAY),
    signingAlgorithm:
      caKey.algorithm.name === 'ECDSA'
        ? { name: 'ECDSA', hash: 'SHA-256' }
        : { name: caKey.algorithm.name, hash: 'SHA-256' },
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions,
  });
  return { certificate: cert.toString('pem'), privateKey: await exportKey(keys.privateKey) };
}

/** True if the certificate was signed by the CA (signature only; not validity dates). */
export function isSignedBy(certificatePem: string, caPem: string): boolean {
  const cert = new X509Certificate(certificatePem);
  const ca = new X509Certificate(caPem);
  return cert.checkIssued(ca) && cert.verify(ca.publicKey);
}
