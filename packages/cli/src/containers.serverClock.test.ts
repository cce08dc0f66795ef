/**
 * Review FR F5 (session 18): `flocker containers list` and `flocker-deploy --wait` judged a container agent silent
 * by this host's clock against `reported_at`, the control service's: an operator machine 20 s or more off the
 * control host showed every container "unknown" with "no report from the container agent … is it running?" (or hid
 * a silent agent). The answer's own clock (its HTTP Date header) is what reported_at is compared with now.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { A, node } from '@flocker/web-ui/testing';
import { type ContainerState, FlockerClient } from '@flocker/api';
import { containerViews } from './containers';
import { whyNotRunning } from './deploy/command';
import { containerConfig } from './testing/containers';

const REPORTED = Date.parse('2026-12-06T05:30:00.000Z');
const writer = containerConfig('writer', A, 'tiny');
const nodes = [node(A, '10.77.0.11')];
const reported: ContainerState[] = [
  { name: 'writer', node_uuid: A, image: 'tiny', running: true, reported_at: new Date(REPORTED).toISOString() },
];

/** The container state as a control service whose clock reads `serverMs` answers it, read by a client. */
async function answeredAt(serverMs: number): Promise<ContainerState[]> {
  const srv: Server = createServer((_req, res) => {
    res.setHeader('date', new Date(serverMs).toUTCString());
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(reported));
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  try {
    const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
    return await new FlockerClient({ baseUrl: url }).listContainerState();
  } finally {
    await new Promise<void>((r) => srv.close(() => r()));
  }
}

/** This host's clock reading `ms` (Date.now only: the client's timers and the monotonic clock run as they do). */
function hostClockAt(ms: number): jest.SpyInstance {
  return jest.spyOn(Date, 'now').mockReturnValue(ms);
}

describe('a silent container agent is judged on the control service’s clock', () => {
  afterEach(() => jest.restoreAllMocks());

  test('this host 60 s ahead, the service 2 s after the report: not silent', async () => {
    const state = await answeredAt(REPORTED + 2_000);
    hostClockAt(REPORTED + 60_000);
    const [view] = containerViews([writer], state, nodes, []);
    expect(view?.state).toBe('running');
    expect(view?.silent_agent).toBeNull();
    expect(whyNotRunning(writer, state, nodes)).toBeUndefined();
  });

  test('this host 2 s after the report, the service 60 s: silent since the report', async () => {
    const state = await answeredAt(REPORTED + 60_000);
    hostClockAt(REPORTED + 2_000);
    const [view] = containerViews([writer], state, nodes, []);
    expect(view?.state).toBe('unknown');
    expect(view?.silent_agent).toEqual({ node_uuid: A, host: '10.77.0.11', since: new Date(REPORTED).toISOString() });
    expect(whyNotRunning(writer, state, nodes)).toBe(
      `no report from the container agent on host 10.77.0.11 since ${new Date(REPORTED).toISOString()}: is it running?`,
    );
  });

  test('an answer without the service’s clock (not from a client): this host’s clock, as before', () => {
    hostClockAt(REPORTED + 60_000);
    expect(containerViews([writer], reported, nodes, [])[0]?.state).toBe('unknown');
    hostClockAt(REPORTED + 2_000);
    expect(containerViews([writer], reported, nodes, [])[0]?.state).toBe('running');
  });
});
