export { FlockerDockerStack, TINY_IMAGE, cleanupUnder, type FlockerDockerStackOptions } from './FlockerDockerStack';
export { DockerDaemon, DOCKER_CLI } from './DockerDaemon';
export { exec, until, sleep, type ExecResult } from './exec';
export { buildTinyRootfsTar } from './tinyImage';
export { DockerBesideAgent } from './DockerBesideAgent';
