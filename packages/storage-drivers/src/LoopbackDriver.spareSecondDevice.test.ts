/**
 * Session 13 review (R1), pre-existing (not from e3f3deb): a claim flushes and checks only the spare's lowest loop
 * device. A second device of the same spare (spareDevicesToDetach knows the case: bound by hand, or left over) that
 * an opener still holds with raw writes in its page cache is neither flushed nor seen busy: the claim hands the
 * spare out, and the opener's writes land in the dataset's volume when it closes the device.
 */
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { execFileExec } from './exec';
import { closeLoopbackDrivers, LoopbackDriver } from './testing/closingLoopbackDriver';
import { SPARE_MTIME } from './loopbackSpares';
import { destroyTempRoot, makeTempRoot } from './testing/testSupport';

// Ends each driver's helper processes (see closingLoopbackDriver.ts).
afterEach(closeLoopbackDrivers);

jest.setTimeout(60_000);

const MiB = 1024 * 1024;

async function sh(cmd: string, args: string[]): Promise<string> {
  const r = await execFileExec(cmd, args);
  if (r.exitCode !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

describe('LoopbackDriver spares: a second device of a spare', () => {
  it('written raw by an opener that still holds it: the claim does not hand the spare out', async () => {
    const root = await makeTempRoot('flocker-spare-second-');
    try {
      const a = new LoopbackDriver({ rootPath: root, instanceId: 'instance-a' });
      const spare = await a.makeSpare(32 * MiB);
      const image = path.join(root, 'spares', `${spare.id}.img`);
      const second = (await sh('losetup', ['--find', '--show', image])).trim();
      const h = await fs.open(second, 'r+');
      let claimed;
      try {
        // Only in the second device's page cache: the image and its mtime do not show it yet.
        await h.write(Buffer.from('payload'), 0, 7, 16 * MiB);
        expect((await fs.stat(image)).mtimeMs).toBe(SPARE_MTIME * 1000);
        claimed = await a.claimSpare(randomUUID(), 32 * MiB, { attach: true });
      } finally {
        await h.close();
      }
      if (claimed !== undefined) {
        // What the dataset got: the opener's bytes, written into its volume at the close.
        const volume = await fs.readFile(path.join(root, 'volumes', `${claimed.blockdeviceId}.img`));
        expect({
          handedOut: claimed.blockdeviceId,
          written: volume.subarray(16 * MiB, 16 * MiB + 7).toString(),
        }).toBeUndefined();
      }
      expect(claimed).toBeUndefined();
    } finally {
      await destroyTempRoot(root);
    }
  });
});
