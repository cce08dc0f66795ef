/**
 * Test support for the local engines: a btrfs file system on its own loop device (one per
 * simulated host), and a throwaway cluster CA with node certificates made by openssl.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NodeTlsCredentials } from './transfer';

export interface BtrfsLoopPool {
  /** Where the file system is mounted: the pool. */
  readonly pool: string;
  readonly device: string;
  readonly image: string;
  destroy(): void;
}

const run = (file: string, args: string[]): string =>
  execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();

/** A new btrfs file system of `size` bytes on its own loop device, mounted under dir. */
export function makeBtrfsLoopPool(dir: string, name: string, size = 512 * 1024 * 1024): BtrfsLoopPool {
  const image = join(dir, `${name}.img`);
  const pool = join(dir, name);
  // wx: never over an image a pool still uses (a run killed before its clean-up).
  writeFileSync(image, '', { flag: 'wx' });
  run('truncate', ['-s', String(size), image]);
  const device = run('losetup', ['-f', '--show', image]);
  run('mkfs.btrfs', ['-q', '-f', device]);
  mkdirSync(pool, { recursive: true });
  run('mount', [device, pool]);
  return {
    pool,
    device,
    image,
    destroy: () => {
      // Bind mounts of its subvolumes first (the test's mount paths), then the pool itself.
      const mounts = readFileSync('/proc/self/mountinfo', 'utf8');
      const majorMinor = mounts
        .split('\n')
        .map((l) => l.split(' '))
        .find((f) => f[4] === pool)?.[2];
      for (const f of mounts.split('\n').map((l) => l.split(' '))) {
        if (majorMinor !== undefined && f[2] === majorMinor && f[4] !== undefined && f[4] !== pool)
          execFileSync('umount', ['-l', f[4]], { stdio: 'ignore' });
      }
      execFileSync('umount', ['-l', pool], { stdio: 'ignore' });
      execFileSync('losetup', ['-d', device], { stdio: 'ignore' });
      rmSync(image, { force: true });
    },
  };
}

export interface TestCluster {
  readonly dir: string;
  readonly ca: string;
  /** A node certificate (CN node-<uuid>) of this cluster. */
  node(uuid?: string): NodeTlsCredentials & { nodeUuid: string };
  destroy(): void;
}

/** A cluster CA made by openssl (EC P-256), issuing node certificates as flocker-ca does (client and server use). */
export function makeTestCluster(): TestCluster {
  const dir = mkdtempSync(join(tmpdir(), 'flocker-local-ca-'));
  const caKey = join(dir, 'cluster.key');
  const caCrt = join(dir, 'cluster.crt');
  run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', caKey, '-out', caCrt, '-days', '2', '-subj', `/CN=cluster-test/O=${randomUUID()}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]); // prettier-ignore
  const ext = join(dir, 'node.ext');
  writeFileSync(
    ext,
    'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth,serverAuth\n',
  );
  return {
    dir,
    ca: readFileSync(caCrt, 'utf8'),
    node: (uuid = randomUUID()) => {
      const key = join(dir, `${uuid}.key`);
      const csr = join(dir, `${uuid}.csr`);
      const crt = join(dir, `${uuid}.crt`);
      run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=node-${uuid}`]); // prettier-ignore
      run('openssl', ['x509', '-req', '-in', csr, '-CA', caCrt, '-CAkey', caKey, '-CAcreateserial', '-out', crt, '-days', '2', '-extfile', ext]); // prettier-ignore
      return {
        ca: readFileSync(caCrt, 'utf8'),
        cert: readFileSync(crt, 'utf8'),
        key: readFileSync(key, 'utf8'),
        nodeUuid: uuid,
      };
    },
    destroy: () => rmSync(dir, { recursive: true, force: true }),
  };
}
