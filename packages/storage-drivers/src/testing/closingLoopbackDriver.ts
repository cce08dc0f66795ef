/**
 * The loopback driver for tests: every one made is remembered, and closeLoopbackDrivers() (a test file's afterEach)
 * ends their helper processes. A driver keeps two flocker-syshelper processes until closed, so a jest worker running
 * the Loopback tests without it held ~240 idle ones until it exited. A closed driver still works (its helpers start
 * again), so one shared by several tests may be closed after each.
 */
import { LoopbackDriver as RealLoopbackDriver, type LoopbackDriverOptions } from '../LoopbackDriver';

const made = new Set<RealLoopbackDriver>();

export class LoopbackDriver extends RealLoopbackDriver {
  constructor(options: LoopbackDriverOptions) {
    super(options);
    made.add(this);
  }
}

export async function closeLoopbackDrivers(): Promise<void> {
  // Not forgotten once closed: a driver shared by the file's tests starts its helpers again in the next one.
  await Promise.all([...made].map((d) => d.close()));
}
