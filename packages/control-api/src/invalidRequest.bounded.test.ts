/**
 * A small invalid body must not be answered with an enormous 400 (T6 finding F-A, session 19). The answer listed
 * every zod issue: a node report whose `errors` array held 100,000 empty objects (0.3 MB) was answered with ~73 MB
 * (1 MB → ~245 MB), built in memory; six such answers left unread held 2.4 GB of the service's memory. Any node may
 * send one on its own report route, any API user e.g. as a container's `ports`.
 */
import { NODE_REPORT_ARRAY_MAX } from '@flocker/api';
import { INVALID_REQUEST_MAX_ISSUES } from './errors';
import { NODE_A, nodeReport, startOnLoopback } from './testing/httpService';

interface ErrorBody {
  readonly description: string;
  readonly code: string;
  readonly errors: readonly string[];
}

async function putReport(url: string, report: unknown): Promise<{ status: number; text: string }> {
  const r = await fetch(`${url}/v1/agent/nodes/${NODE_A}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(report),
  });
  return { status: r.status, text: await r.text() };
}

describe('the size of a 400', () => {
  it('answers an invalid 0.3 MB body with less than 64 KB', async () => {
    const svc = await startOnLoopback();
    try {
      const { status, text } = await putReport(svc.url, {
        ...nodeReport(NODE_A),
        errors: Array.from({ length: 100_000 }, () => ({})),
      });
      expect({ status, bytes: text.length < 65_536 ? 'small' : text.length }).toEqual({ status: 400, bytes: 'small' });
      // Still says what is wrong: the array is too long.
      expect(text).toMatch(/errors: Too big/);
    } finally {
      await svc.close();
    }
  }, 60_000);

  it('names the first issues and how many more there are', async () => {
    const svc = await startOnLoopback();
    try {
      // Under the array bound: every element is checked, each missing its 5 required members.
      const { status, text } = await putReport(svc.url, {
        ...nodeReport(NODE_A),
        errors: Array.from({ length: 1_000 }, () => ({})),
      });
      const body = JSON.parse(text) as ErrorBody;
      expect(status).toBe(400);
      expect(body.code).toBe('INVALID_REQUEST');
      expect(body.errors).toHaveLength(INVALID_REQUEST_MAX_ISSUES + 1);
      expect(body.errors[0]).toMatch(/^errors\.0\.action: /);
      expect(body.errors.at(-1)).toBe(`and ${5_000 - INVALID_REQUEST_MAX_ISSUES} more issues`);
      expect(body.description).toContain(`; and ${5_000 - INVALID_REQUEST_MAX_ISSUES} more issues`);
      expect(text.length).toBeLessThan(8_192);
    } finally {
      await svc.close();
    }
  });

  it('keeps accepting a report with many (valid) elements under the bound', async () => {
    expect(NODE_REPORT_ARRAY_MAX).toBeGreaterThanOrEqual(10_000);
    const svc = await startOnLoopback();
    try {
      const errors = Array.from({ length: 2_000 }, (_, i) => ({
        action: 'a',
        code: 'C',
        message: `m${i}`,
        attempts: 1,
        since: '2026-01-01T00:00:00Z',
      }));
      const { status } = await putReport(svc.url, { ...nodeReport(NODE_A), errors });
      expect(status).toBeLessThan(300);
    } finally {
      await svc.close();
    }
  });
});
