export * from './CsiDriver';
export * from './mapping';
export * from './mounter';
export * from './nodeId';
export * from './proto';
export * from './server';
export * from './startCsiDriver';
export * from './wire';
