/**
 * `docker volume create -d flocker -o profile=…` with a real Docker Engine on a loopback node: the CLI's profile rule
 * (@flocker/api storageProfileFor), so an unknown profile is refused with the CLI's sentence instead of being stored
 * and shown as the volume's PROFILE (review T3 finding 4). Needs root.
 */
import { type FlockerDockerStack } from './docker';
import { dockerStackForSuite } from './docker/suite';

jest.setTimeout(120_000);

describe('docker volume create -o profile with real Docker (loopback)', () => {
  let stack: FlockerDockerStack;
  let drv: string;

  dockerStackForSuite((s) => {
    stack = s;
    drv = s.driver;
  });

  it('refuses an unknown profile and creates nothing; keeps a known one, in lower case', async () => {
    const r = await stack.docker(['volume', 'create', '-d', drv, '-o', 'profile=glod', 'v-glod'], { check: false });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(
      /unknown storage profile "glod": use gold, silver or bronze \(on Cinder nodes, also a Cinder volume type/,
    );
    expect(await stack.dataset('v-glod')).toBeUndefined();
    await stack.docker(['volume', 'create', '-d', drv, '-o', 'size=100MiB', '-o', 'profile=Bronze', 'v-bronze']);
    expect((await stack.dataset('v-bronze'))?.metadata).toMatchObject({ 'clusterhq:flocker:profile': 'bronze' });
    await stack.docker(['volume', 'rm', 'v-bronze']);
  });
});
