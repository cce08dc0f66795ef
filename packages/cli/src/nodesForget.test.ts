/**
 * `flocker nodes forget <node>` (session 18, review FR finding 9): what is called, what a person reads, the exit codes.
 */
import { FlockerApiError, type FlockerClient, type ForgottenNode } from '@flocker/api';
import { runCli } from './testing/runCli';
import { EXIT } from './errors';
import { completionKind } from './completion';

const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const D1 = '11111111-1111-4111-8111-111111111111';
const D2 = '22222222-2222-4222-8222-222222222222';

/** A client whose forgetNode answers `answer` (or throws it) and records what it was asked. */
function clientOf(answer: ForgottenNode | Error, asked: string[]): () => FlockerClient {
  const fake = {
    forgetNode: async (node: string) => {
      asked.push(node);
      if (answer instanceof Error) throw answer;
      return Promise.resolve(answer);
    },
  };
  return () => fake as unknown as FlockerClient;
}

it('forgets a node by host and says what still names it', async () => {
  const asked: string[] = [];
  const forgotten: ForgottenNode = {
    uuid: A,
    host: '10.0.0.5',
    accepted_loss_datasets: [D1],
    data_node_datasets: [D2],
  };
  const r = await runCli(clientOf(forgotten, asked), ['nodes', 'forget', '10.0.0.5']);
  expect(asked).toEqual(['10.0.0.5']);
  expect(r.code).toBe(EXIT.OK);
  expect(r.out).toBe(
    [
      `Forgot host 10.0.0.5 (node ${A}): it is no longer shown, dead or alive, nor after a control service restart.`,
      `No longer named as an accepted loss of: ${D1} (should it come back, its writes there are kept aside only if you accept the loss again).`,
      `Still named as where the data may be (data-node marker) of: ${D2}. If the host is gone for good, moving those needs --accept-data-loss.`,
    ].join('\n'),
  );
  const json = await runCli(clientOf(forgotten, asked), ['nodes', 'forget', A, '--json']);
  expect(JSON.parse(json.out)).toEqual(forgotten);
});

it('refused (409): exit 4, each thing to do first on its own line', async () => {
  const errors = [
    'Its dataset agent is reporting (the node is alive): stop its agents for good (or retire the host), then wait the node timeout (30 s) until it is declared dead.',
    `It is the primary of dataset ${D1}: move it to another node (flocker volumes move ${D1} <node>) or destroy it.`,
  ];
  const refusal = new FlockerApiError(
    409,
    'NODE_IN_USE',
    `host 10.0.0.5 (node ${A}) may not be forgotten yet: ${errors.join(' ')}`,
    errors,
  );
  const r = await runCli(clientOf(refusal, []), ['nodes', 'forget', '10.0.0.5']);
  expect(r.code).toBe(EXIT.CONFLICT);
  expect(r.err).toBe(
    [`flocker: host 10.0.0.5 (node ${A}) may not be forgotten yet:`, ...errors.map((e) => `  - ${e}`)].join('\n'),
  );
  const json = await runCli(clientOf(refusal, []), ['nodes', 'forget', '10.0.0.5', '--json']);
  expect(JSON.parse(json.err)).toMatchObject({ error: { code: 'NODE_IN_USE', exit_code: EXIT.CONFLICT } });
});

it('unknown or forgotten already (404): exit 3 with the service’s words', async () => {
  const gone = new FlockerApiError(
    404,
    'NODE_NOT_FOUND',
    `No node ${A} is known (it never reported, or it was forgotten already).`,
  );
  const r = await runCli(clientOf(gone, []), ['nodes', 'forget', A]);
  expect(r.code).toBe(EXIT.NOT_FOUND);
  expect(r.err).toBe(`flocker: No node ${A} is known (it never reported, or it was forgotten already).`);
});

it('forget without a node: a usage error', async () => {
  const r = await runCli(clientOf(new Error('not called'), []), ['nodes', 'forget']);
  expect(r.code).toBe(EXIT.USAGE);
});

it('completes the node to forget by host', () => {
  expect(completionKind(['nodes', 'forget', '10.'])).toBe('node');
});
