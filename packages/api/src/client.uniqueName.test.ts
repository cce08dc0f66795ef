/**
 * Upgrade order (HARD-U follow-up): a control service one release behind checks create bodies strictly and refuses
 * `unique_name`, which it does not know. The client then asks once more without it (the old behaviour), and says so.
 * The refusal below is the old service's answer word for word: derived by running CreateDatasetRequest and
 * invalidRequest as of a68575e^ on a body carrying unique_name.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type ClientLogger,
  FlockerApiError,
  FlockerClient,
  refusedUnknownUniqueName,
  UNIQUE_NAME_RECHECK_MS,
} from './client';

const D = '11111111-1111-4111-8111-111111111111';
const N = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';

/** The 400 a control service of the release before a68575e answers to a create carrying unique_name. */
const OLD_REFUSAL = {
  description: 'The request is not valid: (body): Unrecognized key: "unique_name"',
  code: 'INVALID_REQUEST',
  errors: ['(body): Unrecognized key: "unique_name"'],
};

type Answer = (body: Record<string, unknown>) => { status: number; json: unknown };

/** A control service answering creates with `answer`; the bodies it was sent. */
async function service(
  answer: Answer,
): Promise<{ url: string; bodies: Record<string, unknown>[]; close: () => Promise<void> }> {
  const bodies: Record<string, unknown>[] = [];
  const read = async (req: IncomingMessage): Promise<string> => {
    let text = '';
    for await (const chunk of req) text += String(chunk);
    return text;
  };
  const srv: Server = createServer((req, res) => {
    void read(req).then((text) => {
      const body = JSON.parse(text) as Record<string, unknown>;
      bodies.push(body);
      const { status, json } = answer(body);
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(json));
    });
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}`, bodies, close: () => new Promise((r) => srv.close(() => r())) };
}

/** The release before: strict about keys, names unchecked. */
const olderService: Answer = (body) =>
  'unique_name' in body
    ? { status: 400, json: OLD_REFUSAL }
    : {
        status: 201,
        json: { dataset_id: D, primary: N, metadata: body.metadata, deleted: false, maximum_size: 1 << 30 },
      };

function recorder(): ClientLogger & { warnings: { message: string; meta: Record<string, unknown> }[] } {
  const warnings: { message: string; meta: Record<string, unknown> }[] = [];
  return { warnings, warn: (message, meta) => warnings.push({ message, meta }) };
}

const request = { primary: N, maximum_size: 1 << 30, metadata: { name: 'pvc-1' } };

describe('createDataset against a control service that does not know unique_name', () => {
  it('asks once more without unique_name and logs it', async () => {
    const srv = await service(olderService);
    const logger = recorder();
    try {
      const client = new FlockerClient({ baseUrl: srv.url, logger });
      const made = await client.createDataset({ ...request, dataset_id: D, unique_name: true });
      expect(made.dataset_id).toBe(D);
      expect(srv.bodies).toEqual([
        { ...request, dataset_id: D, unique_name: true },
        { ...request, dataset_id: D },
      ]);
      expect(logger.warnings).toEqual([
        { message: expect.stringContaining('unique_name') as string, meta: { name: 'pvc-1', dataset_id: D } },
      ]);
    } finally {
      await srv.close();
    }
  });

  it('remembers it per client: one refused create per client, not per create; asked again after a while', async () => {
    let upgraded = false;
    const srv = await service((body) =>
      upgraded
        ? {
            status: 201,
            json: { dataset_id: D, primary: N, metadata: body.metadata, deleted: false, maximum_size: 1 << 30 },
          }
        : olderService(body),
    );
    const logger = recorder();
    const now = jest.spyOn(Date, 'now');
    try {
      let t = 1_000_000;
      now.mockImplementation(() => t);
      const client = new FlockerClient({ baseUrl: srv.url, logger });
      for (let i = 0; i < 3; i++) await client.createDataset({ ...request, unique_name: true });
      expect(srv.bodies).toEqual([{ ...request, unique_name: true }, request, request, request]);
      expect(logger.warnings).toHaveLength(1);
      expect(logger.warnings[0]?.message).toMatch(/as this client's creates are for the next 10 min/);
      // Another client finds out for itself.
      await new FlockerClient({ baseUrl: srv.url }).createDataset({ ...request, unique_name: true });
      expect(srv.bodies.slice(4)).toEqual([{ ...request, unique_name: true }, request]);
      // Still within the time: not asked.
      t += UNIQUE_NAME_RECHECK_MS - 1;
      await client.createDataset({ ...request, unique_name: true });
      expect(srv.bodies.slice(6)).toEqual([request]);
      // The control service upgraded meanwhile: after the time, asked again, and kept asking.
      upgraded = true;
      t += 1;
      await client.createDataset({ ...request, unique_name: true });
      await client.createDataset({ ...request, unique_name: true });
      expect(srv.bodies.slice(7)).toEqual([
        { ...request, unique_name: true },
        { ...request, unique_name: true },
      ]);
      expect(logger.warnings).toHaveLength(1);
    } finally {
      now.mockRestore();
      await srv.close();
    }
  });

  it('asks once only: a second refusal is the caller’s', async () => {
    const srv = await service(() => ({ status: 400, json: OLD_REFUSAL }));
    try {
      const client = new FlockerClient({ baseUrl: srv.url });
      await expect(client.createDataset({ ...request, unique_name: true })).rejects.toMatchObject({
        status: 400,
        code: 'INVALID_REQUEST',
      });
      expect(srv.bodies).toHaveLength(2);
    } finally {
      await srv.close();
    }
  });

  it('does not fall back on any other answer: a taken name, another 400, a create that did not ask', async () => {
    const answers: { status: number; json: unknown }[] = [
      { status: 409, json: { description: 'A dataset named pvc-1 exists', code: 'DATASET_NAME_IN_USE' } },
      {
        status: 400,
        json: {
          description: 'The request is not valid: maximum_size: too small',
          code: 'INVALID_REQUEST',
          errors: ['maximum_size: too small'],
        },
      },
      { status: 400, json: { description: 'pvc-1 is shaped like an id', code: 'NAME_SHAPED_LIKE_ID' } },
    ];
    for (const answer of answers) {
      const srv = await service(() => answer);
      const logger = recorder();
      try {
        const client = new FlockerClient({ baseUrl: srv.url, logger });
        await expect(client.createDataset({ ...request, unique_name: true })).rejects.toMatchObject({
          status: answer.status,
        });
        expect(srv.bodies).toHaveLength(1);
        expect(logger.warnings).toEqual([]);
      } finally {
        await srv.close();
      }
    }
    const srv = await service(() => ({ status: 400, json: OLD_REFUSAL }));
    try {
      await expect(new FlockerClient({ baseUrl: srv.url }).createDataset(request)).rejects.toBeInstanceOf(
        FlockerApiError,
      );
      expect(srv.bodies).toHaveLength(1);
    } finally {
      await srv.close();
    }
  });
});

describe('refusedUnknownUniqueName', () => {
  const e = (status: number, code: string, description: string, errors?: string[]): FlockerApiError =>
    new FlockerApiError(status, code, description, errors);
  it('is the old service’s 400 for the unknown key, in either form zod words it', () => {
    expect(refusedUnknownUniqueName(e(400, OLD_REFUSAL.code, OLD_REFUSAL.description, OLD_REFUSAL.errors))).toBe(true);
    expect(refusedUnknownUniqueName(e(400, OLD_REFUSAL.code, OLD_REFUSAL.description))).toBe(true);
    const several = '(body): Unrecognized keys: "source_backup_id", "unique_name"';
    expect(refusedUnknownUniqueName(e(400, 'INVALID_REQUEST', `The request is not valid: ${several}`, [several]))).toBe(
      true,
    );
  });
  it('is nothing else', () => {
    expect(refusedUnknownUniqueName(e(400, 'INVALID_REQUEST', 'x', ['(body): Unrecognized key: "unique_names"']))).toBe(
      false,
    );
    expect(
      refusedUnknownUniqueName(e(400, 'INVALID_REQUEST', 'x', ['unique_name: Invalid input: expected boolean'])),
    ).toBe(false);
    expect(refusedUnknownUniqueName(e(409, 'INVALID_REQUEST', OLD_REFUSAL.description, OLD_REFUSAL.errors))).toBe(
      false,
    );
    expect(refusedUnknownUniqueName(e(400, 'NAME_SHAPED_LIKE_ID', OLD_REFUSAL.description))).toBe(false);
    expect(refusedUnknownUniqueName(new Error(OLD_REFUSAL.description))).toBe(false);
  });
});
