/**
 * The agent reports which configuration each container runs (ContainerState.config, review T2 F4): flocker-deploy
 * --wait counts a container as deployed only when it runs the configured one, so a redeploy changing only the
 * command, ports or environment no longer succeeds at once from the old container's report.
 */
import { ContainerConfiguration, containerConfigId, type DatasetConfiguration } from '@flocker/api';
import { calculateContainerChanges, LABEL_CONFIG, type ObservedContainer } from './calculateContainerChanges';
import { reportOf } from './ContainerAgent';
import { desiredContainers } from './desiredContainers';

const ME = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const nodes = [{ uuid: ME, host: '10.0.0.1' }];
const datasets: DatasetConfiguration[] = [];
const v1 = ContainerConfiguration.parse({ name: 'web', node_uuid: ME, image: 'tiny', command_line: ['sleep', '1'] });
const v2 = { ...v1, command_line: ['sleep', '2'] };

const desired = (c: ContainerConfiguration) => desiredContainers(ME, [c], datasets, nodes).desired;
const running = (hash: string | undefined, config?: string): ObservedContainer => ({
  id: 'id-web',
  name: 'web',
  hash,
  state: 'running',
  image: 'tiny',
  ...(config !== undefined ? { config } : {}),
});

describe('the configuration a container runs', () => {
  test('a desired container carries its configuration identity, and so does its create', () => {
    const [d] = desired(v1);
    expect(d?.config).toBe(containerConfigId(v1));
    const [create] = calculateContainerChanges(desired(v1), []);
    expect(create).toMatchObject({ kind: 'create', config: containerConfigId(v1) });
    expect(LABEL_CONFIG).toBe('flocker.config');
  });

  test('a container running the desired spec is reported with the configuration it runs', () => {
    const [d] = desired(v1);
    expect(reportOf([running(d?.hash)], new Map(), desired(v1)).containers).toEqual([
      { name: 'web', image: 'tiny', running: true, config: containerConfigId(v1) },
    ]);
  });

  test('a container left from a previous configuration: its label, or nothing, never the new one', () => {
    const [old] = desired(v1);
    // The agent has the new configuration (v2) but Docker still runs v1's container (its removal failed, say).
    expect(reportOf([running(old?.hash, containerConfigId(v1))], new Map(), desired(v2)).containers).toEqual([
      { name: 'web', image: 'tiny', running: true, config: containerConfigId(v1) },
    ]);
    // Created by an agent before session 18: no label, nothing known.
    expect(reportOf([running(old?.hash)], new Map(), desired(v2)).containers).toEqual([
      { name: 'web', image: 'tiny', running: true },
    ]);
    // A kept container (same spec) whose label names an earlier configuration: the current one is what it runs.
    const [now] = desired(v2);
    expect(reportOf([running(now?.hash, containerConfigId(v1))], new Map(), desired(v2)).containers).toEqual([
      { name: 'web', image: 'tiny', running: true, config: containerConfigId(v2) },
    ]);
  });
});
