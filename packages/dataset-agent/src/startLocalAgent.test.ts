/**
 * FR's F8: the ZFS engine's "trying again" lines (a destroy refused as busy) went to stderr through console.warn:
 * no level, no JSON, no pool, stray text to whatever parses the agent's JSON log lines. localEngineOf wires the
 * agent's logger into the engine.
 */
import type { ExecFn } from '@flocker/storage-drivers';
import type winston from 'winston';
import { localEngineOf } from './startLocalAgent';

const ID = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const FS = `tank/data/flocker/${ID}`;

describe('localEngineOf', () => {
  it("zfs: a destroy tried again is told through the agent's logger, with the pool", async () => {
    const warned: { message: string; meta: unknown }[] = [];
    const logger = {
      warn: (message: string, meta: unknown) => void warned.push({ message, meta }),
    } as unknown as winston.Logger;
    let refusals = 1;
    const exec: ExecFn = async (file, args) => {
      const argv = [file, ...args].join(' ');
      if (argv === `zfs destroy -r ${FS}` && refusals-- > 0)
        return { exitCode: 1, stdout: '', stderr: `cannot destroy '${FS}': dataset is busy` };
      if (argv.startsWith('zfs list') && argv.includes('flocker-diverged'))
        return { exitCode: 1, stdout: '', stderr: 'dataset does not exist' };
      return { exitCode: 0, stdout: '', stderr: '' };
    };
    const engine = localEngineOf({ backend: 'local', engine: 'zfs', pool: 'tank/data', transfer_port: 4525 }, logger, {
      exec,
      readMounts: async () => [],
      sleep: async () => undefined,
      features: { listExact: false, receiveOptions: false, kernelMounts: false },
    });
    await engine.destroyDataset(ID);
    expect(warned).toEqual([
      { message: expect.stringContaining('dataset is busy') as unknown, meta: { pool: 'tank/data' } },
    ]);
  });
});
