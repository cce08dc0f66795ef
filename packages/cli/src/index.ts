export { buildCli, resolveDataset, resolveNode, type Io } from './cli';
export { movePhase, moveWaitPhase, type Phase } from './progress';
export {
  connect,
  resolveConnection,
  DEFAULT_CONTROL_URL,
  DEFAULT_TLS_CONTROL_URL,
  DEFAULT_CREDENTIALS_DIR,
} from './connection';
export { EXIT, CliError } from './errors';
export * from './ca/certificates';
export * from './ca/files';
