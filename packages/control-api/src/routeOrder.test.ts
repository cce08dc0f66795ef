import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express from 'express';
import fc from 'fast-check';
import { routes } from './routes';
import { hotFirst, isHotPath, templatesOverlap } from './routeOrder';

/** Every path a template names with its parameters filled from `fills` (each parameter alike). */
function instances(template: string, fills: readonly string[]): string[] {
  return fills.map((f) => template.replace(/:[A-Za-z_]+/g, f));
}

describe('routeOrder (issue 23: the agent channel and the state list tried first)', () => {
  const paths = [...new Set(routes.map((r) => r.path))];

  it('templatesOverlap: same segment count, and at each segment equal literals or a parameter', () => {
    expect(templatesOverlap('/v1/a/:id', '/v1/a/b')).toBe(true);
    expect(templatesOverlap('/v1/a/:id', '/v1/:x/b')).toBe(true);
    expect(templatesOverlap('/v1/a/:id', '/v1/a')).toBe(false);
    expect(templatesOverlap('/v1/a/:id/c', '/v1/a/:id')).toBe(false);
    expect(templatesOverlap('/v1/a/:id', '/v1/b/:id')).toBe(false);
    expect(templatesOverlap('/v1/a', '/v1/a')).toBe(true);
  });

  it("no two of the contract's route templates overlap, so the registration order cannot change which route answers", () => {
    const overlapping = paths.flatMap((a, i) =>
      paths
        .slice(i + 1)
        .filter((b) => templatesOverlap(a, b))
        .map((b) => [a, b]),
    );
    expect(overlapping).toEqual([]);
  });

  it('hotFirst: the same routes, the hot ones first, each group in the given order', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...paths), { maxLength: 40 }), (ps) => {
        const given = ps.map((path, i) => ({ path, i }));
        const out = hotFirst(given);
        expect([...out].sort((x, y) => x.i - y.i)).toEqual(given);
        const firstCold = out.findIndex((r) => !isHotPath(r.path));
        expect(out.slice(firstCold < 0 ? out.length : firstCold).every((r) => !isHotPath(r.path))).toBe(true);
        for (const group of [out.filter((r) => isHotPath(r.path)), out.filter((r) => !isHotPath(r.path))])
          expect(group.map((r) => r.i)).toEqual([...group.map((r) => r.i)].sort((x, y) => x - y));
      }),
    );
    expect(
      hotFirst(routes)
        .slice(0, 4)
        .map((r) => r.path),
    ).toEqual(['/v1/state/datasets', '/v1/agent/nodes/:uuid', '/v1/agent/cluster', '/v1/agent/cluster/watch']);
  });

  describe('express answers every path with the same route in both orders', () => {
    const servers: Server[] = [];
    const ports: number[] = [];

    beforeAll(async () => {
      for (const ordered of [routes, hotFirst(routes)]) {
        const app = express();
        for (const r of ordered) app[r.method](r.path, (_req, res) => void res.send(`${r.method} ${r.path}`));
        app.use((_req, res) => void res.status(404).send('none'));
        const server = await new Promise<Server>((resolve) => {
          const s = app.listen(0, '127.0.0.1', () => resolve(s));
        });
        servers.push(server);
        ports.push((server.address() as AddressInfo).port);
      }
    });

    afterAll(async () => {
      for (const s of servers) await new Promise<void>((resolve) => s.close(() => resolve()));
    });

    it("each template's paths (parameters as ids, or as another template's literal segments), for each method", async () => {
      const literals = [...new Set(paths.flatMap((p) => p.split('/')).filter((s) => s !== '' && !s.startsWith(':')))];
      const probes = [...new Set(paths.flatMap((p) => instances(p, ['x1', ...literals])))];
      const methods = [...new Set(routes.map((r) => r.method))];
      let matched = 0;
      for (const path of probes) {
        for (const method of methods) {
          const [before, after] = await Promise.all(
            ports.map(async (port) => {
              const res = await fetch(`http://127.0.0.1:${port}${path}`, { method: method.toUpperCase() });
              return `${res.status} ${await res.text()}`;
            }),
          );
          expect(after).toBe(before);
          if (before !== '404 none') matched++;
        }
      }
      // Every route was reached by some probe.
      expect(matched).toBeGreaterThanOrEqual(routes.length);
    }, 60_000);
  });
});
