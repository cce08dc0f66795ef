export * from './schemas';
export * from './client';
export * from './identity';
export * from './sizes';
export * from './tls';
export * from './containers';
export * from './controlUrls';
export * from './jsonDepth';
