/**
 * isAlive / pidsInNamespace against the kernel: a killed process whose leader exited first (a zombie) while
 * another thread still runs is not gone, and is found in the namespaces that thread holds — else a teardown
 * moves on while that thread keeps the host's mount namespace, its mounts and loop devices. Needs root.
 */
import { isAlive, pidsInNamespace } from './processes';
import { startZombieLeader } from './zombieLeader';

jest.setTimeout(30_000);

it('a zombie leader with a live thread is alive and in its thread mount namespace; gone once the thread ends', async () => {
  const z = await startZombieLeader('true', 2);
  try {
    expect(isAlive(z.pid)).toBe(true);
    expect(pidsInNamespace('mnt', z.threadMountNs)).toContain(z.pid);
    await z.exited;
    expect(isAlive(z.pid)).toBe(false);
  } finally {
    await z.kill();
  }
});
