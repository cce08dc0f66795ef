import type { FlockerClient, NodeReport } from '@flocker/api';
import { controlChannelOf } from './controlChannel';

describe('controlChannelOf (FLOCKER_AGENT_FOLLOW)', () => {
  // Records the calls the channel makes: the wiring is all there is to test.
  const calls: string[] = [];
  const client = {
    reportNodeState: async (): Promise<void> => void calls.push('report'),
    waitForCluster: async (since?: string, timeoutMs?: number): Promise<void> =>
      void calls.push(`cluster ${since} ${timeoutMs}`),
    waitForClusterDelta: async (since: string | undefined, timeoutMs: number, node: string): Promise<void> =>
      void calls.push(`delta ${since} ${timeoutMs} ${node}`),
    watchCluster: (): never => {
      throw new Error('not followed by watch');
    },
  } as unknown as FlockerClient;

  it('watch: the client itself, which streams the view', () => {
    expect(controlChannelOf(client, 'watch')).toBe(client);
  });

  it('long-poll: no watchCluster (the agent long-polls deltas), the other calls go to the client', async () => {
    const channel = controlChannelOf(client, 'long-poll');
    expect('watchCluster' in channel).toBe(false);
    await channel.reportNodeState({} as NodeReport);
    await channel.waitForCluster('g1', 5);
    await channel.waitForClusterDelta?.('g2', 6, 'n');
    expect(calls).toEqual(['report', 'cluster g1 5', 'delta g2 6 n']);
  });
});
