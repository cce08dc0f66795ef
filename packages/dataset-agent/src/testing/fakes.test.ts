import { blockDeviceApiContract } from '@flocker/storage-drivers/testing';
import { FakeDriver } from './fakes';

// The fake is held to the contract it stands in for: every part that needs no real device.
blockDeviceApiContract(
  'FakeDriver (in memory)',
  async () => {
    const driver = new FakeDriver();
    return { driver, driverOnOtherInstance: driver.onOtherInstance('i-other'), cleanup: async () => undefined };
  },
  { devices: false },
);
