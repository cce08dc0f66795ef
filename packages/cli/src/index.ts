export { buildCli, resolveDataset, resolveNode, type Io } from './cli';
export { connect, DEFAULT_CONTROL_URL } from './connection';
export { EXIT, CliError } from './errors';
export * from './ca/certificates';
export * from './ca/files';
