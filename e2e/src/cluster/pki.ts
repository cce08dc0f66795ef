/**
 * A certificate authority per test cluster, made with flocker-ca's library
 * functions: the cluster CA, the control service certificate (with every address
 * it is reached at), node certificates installed the way an agent expects them
 * (cluster.crt, node.crt, node.key beside agent.yml) and API user certificates.
 * Directories 0700, private keys 0600, as on a real node.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CONTROL_COMMON_NAME, nodeCommonName, tlsDispatcher, userCommonName } from '@flocker/api';
import { initialize, issueCertificate, loadCa, type PemPair, type Validity } from '@flocker/cli';

export interface CertificateFiles {
  cert: string;
  key: string;
}

export interface ServerTlsFiles {
  ca: string;
  cert: string;
  key: string;
}

function writePem(dir: string, base: string, pem: PemPair): CertificateFiles {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.chmodSync(dir, 0o700);
  const cert = path.join(dir, `${base}.crt`);
  const key = path.join(dir, `${base}.key`);
  fs.writeFileSync(key, pem.privateKey, { mode: 0o600 });
  fs.chmodSync(key, 0o600);
  fs.writeFileSync(cert, pem.certificate, { mode: 0o644 });
  return { cert, key };
}

export class ClusterPki {
  private constructor(
    /** Holds cluster.crt/.key and the issued files; the CA key never leaves it. */
    readonly dir: string,
    readonly ca: PemPair,
    readonly control: ServerTlsFiles,
  ) {}

  /** Creates the CA and the control service certificate valid for `controlAddresses` (names or IPs). */
  static async create(
    dir: string,
    controlAddresses: readonly string[],
    clusterName = 'flocker-test',
  ): Promise<ClusterPki> {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.chmodSync(dir, 0o700);
    await initialize(clusterName, dir);
    const ca = await loadCa(dir);
    const control = await issueCertificate(ca, {
      commonName: CONTROL_COMMON_NAME,
      role: 'control',
      subjectAltNames: [...new Set(controlAddresses)],
    });
    const files = writePem(dir, 'control-service', control);
    return new ClusterPki(dir, ca, { ca: path.join(dir, 'cluster.crt'), ...files });
  }

  /** Reopens a PKI created earlier in `dir`. */
  static async open(dir: string): Promise<ClusterPki> {
    const ca = await loadCa(dir);
    return new ClusterPki(dir, ca, {
      ca: path.join(dir, 'cluster.crt'),
      cert: path.join(dir, 'control-service.crt'),
      key: path.join(dir, 'control-service.key'),
    });
  }

  get caFile(): string {
    return this.control.ca;
  }

  /** PEMs for the HTTPS server of startControlService({ tls }). */
  serverCredentials(): { ca: Buffer; cert: Buffer; key: Buffer } {
    return {
      ca: fs.readFileSync(this.control.ca),
      cert: fs.readFileSync(this.control.cert),
      key: fs.readFileSync(this.control.key),
    };
  }

  /** Issues a node certificate (any CN prefix check is the server's job) as a PEM pair. */
  issue(commonName: string, role: 'node' | 'user' | 'control', validity: Validity = {}): Promise<PemPair> {
    return issueCertificate(this.ca, { commonName, role, ...validity });
  }

  /**
   * Installs a node's credentials into `configDir` (where its agent.yml lives):
   * cluster.crt, node.crt, node.key. Returns the node UUID, which becomes its identity.
   */
  async installNode(configDir: string, uuid: string = randomUUID()): Promise<string> {
    const pem = await this.issue(nodeCommonName(uuid), 'node');
    writePem(configDir, 'node', pem);
    fs.copyFileSync(this.caFile, path.join(configDir, 'cluster.crt'));
    return uuid;
  }

  /** Writes an API user's <name>.crt/.key into the PKI directory. */
  async user(name: string): Promise<CertificateFiles> {
    const existing = { cert: path.join(this.dir, `${name}.crt`), key: path.join(this.dir, `${name}.key`) };
    if (fs.existsSync(existing.cert) && fs.existsSync(existing.key)) return existing;
    return writePem(this.dir, name, await this.issue(userCommonName(name), 'user'));
  }

  /** A FlockerClient dispatcher authenticating as the API user `name`. */
  async userDispatcher(name = 'admin'): Promise<ReturnType<typeof tlsDispatcher>> {
    const files = await this.user(name);
    return tlsDispatcher({
      ca: fs.readFileSync(this.caFile),
      cert: fs.readFileSync(files.cert),
      key: fs.readFileSync(files.key),
    });
  }

  /** Environment for the `flocker` CLI as API user `name`. */
  async cliEnv(name = 'admin'): Promise<Record<string, string>> {
    const files = await this.user(name);
    return { FLOCKER_CA_CERT: this.caFile, FLOCKER_CERT: files.cert, FLOCKER_KEY: files.key };
  }
}
