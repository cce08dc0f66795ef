import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FlockerClient } from './client';

/**
 * A control replica refuses a write it read right after its event loop stalled (REPLICA_STALLED, nothing applied:
 * its client may have moved on). The last replica asked (a lone one: the Docker plugin, the CLI) is asked once more a
 * moment later, so such a client does not fail on it; a second refusal is thrown.
 */

const NODE = 'aaaaaaaa-0000-4000-8000-000000000001';
const ID = 'bbbbbbbb-0000-4000-8000-000000000002';

describe('FlockerClient: REPLICA_STALLED from the last replica', () => {
  let srv: Server | undefined;
  afterEach(async () => {
    const s = srv;
    srv = undefined;
    if (s !== undefined)
      await new Promise<void>((resolve) => {
        s.closeAllConnections();
        s.close(() => resolve());
      });
  });

  /** A lone replica refusing the first `refusals` requests REPLICA_STALLED, then creating; the times it was asked. */
  async function lone(refusals: number): Promise<{ client: FlockerClient; asked: number[] }> {
    const asked: number[] = [];
    srv = createServer((req, res) => {
      req.resume();
      asked.push(Date.now());
      const refused = asked.length <= refusals;
      res.writeHead(refused ? 503 : 201, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify(
          refused
            ? { code: 'REPLICA_STALLED', description: 'read right after this replica stalled; nothing applied' }
            : { dataset_id: ID, primary: NODE, metadata: {}, deleted: false },
        ),
      );
    });
    await new Promise<void>((resolve) => srv?.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
    return { client: new FlockerClient({ baseUrl: url, timeoutMs: 10_000 }), asked };
  }

  it('a write not safe to repeat is asked once more, about a second later, and succeeds', async () => {
    const { client, asked } = await lone(1);
    await expect(client.createDataset({ primary: NODE, maximum_size: 1 << 26 })).resolves.toMatchObject({
      dataset_id: ID,
    });
    expect(asked).toHaveLength(2);
    expect((asked[1] as number) - (asked[0] as number)).toBeGreaterThanOrEqual(900);
  });

  it('refused again: thrown as REPLICA_STALLED (asked twice, not more)', async () => {
    const { client, asked } = await lone(5);
    await expect(client.createDataset({ primary: NODE, maximum_size: 1 << 26 })).rejects.toMatchObject({
      status: 503,
      code: 'REPLICA_STALLED',
    });
    expect(asked).toHaveLength(2);
  });
});
