/**
 * Review T6 F-A (session 19): a container request or report with an absurd array is refused by its schema, and the
 * refusal is one issue (zod stops at the bound) rather than one per element.
 */
import { CONTAINER_ARRAY_MAX, ContainerReport, CreateContainerRequest } from './containers';

const N = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const base = { name: 'web', node_uuid: N, image: 'nginx' };

it('ports, links and command words beyond the bound are refused with one issue', () => {
  for (const extra of [
    { ports: Array.from({ length: CONTAINER_ARRAY_MAX + 1 }, () => ({})) },
    { links: Array.from({ length: CONTAINER_ARRAY_MAX + 1 }, () => ({})) },
    { command_line: Array.from({ length: CONTAINER_ARRAY_MAX + 1 }, () => 'x') },
  ]) {
    const r = CreateContainerRequest.safeParse({ ...base, ...extra });
    expect(r.success).toBe(false);
    expect(r.error?.issues.length).toBeLessThanOrEqual(2);
  }
});

it('a real container (a range of 1,001 published ports) is accepted', () => {
  const ports = Array.from({ length: 1001 }, (_, i) => ({ internal: 8000 + i, external: 8000 + i }));
  expect(CreateContainerRequest.safeParse({ ...base, ports }).success).toBe(true);
});

it("a container report's list is bounded", () => {
  const containers = Array.from({ length: 20_001 }, () => ({}));
  const r = ContainerReport.safeParse({ containers });
  expect(r.success).toBe(false);
  expect(r.error?.issues.length).toBeLessThanOrEqual(2);
});
