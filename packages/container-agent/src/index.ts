export { ContainerAgent, reportOf, type AgentClient, type ContainerAgentOptions } from './ContainerAgent';
export {
  calculateContainerChanges,
  LABEL_NAME,
  LABEL_SPEC,
  type ContainerChange,
  type ObservedContainer,
  type DockerState,
} from './calculateContainerChanges';
export {
  desiredContainers,
  linkEnvironment,
  linkHost,
  specHash,
  type DockerSpec,
  type DesiredContainer,
  type Blocked,
} from './desiredContainers';
export { DockerOps, type ContainerRuntime } from './DockerOps';
