export * from './nodeConfig';
export * from './nodeConnection';
