export * from './BlockDeviceApi';
