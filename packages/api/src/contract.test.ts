import { apiRoutes, routePath, successSchema } from './contract';

describe('the route contract', () => {
  it('every route declares a success answer and a unique method and path', () => {
    const seen = new Set<string>();
    for (const route of Object.values(apiRoutes)) {
      expect(() => successSchema(route)).not.toThrow();
      const key = `${route.method} ${route.path}`;
      expect(seen.has(key)).toBe(false);
      seen.add(key);
    }
  });

  it('a lease renewal (200) and acquisition (201) read the same schema', () => {
    expect(successSchema(apiRoutes.acquireLease)).toBe(apiRoutes.acquireLease.responses[200].schema);
  });

  it('one dataset is read where it is updated and deleted (issue 23), answering 200, 400 and 404', () => {
    expect(apiRoutes.getDataset.method).toBe('get');
    expect(apiRoutes.getDataset.path).toBe(apiRoutes.updateDataset.path);
    expect(apiRoutes.getDataset.path).toBe(apiRoutes.deleteDataset.path);
    expect(Object.keys(apiRoutes.getDataset.responses).sort()).toEqual(['200', '400', '404']);
    expect(routePath(apiRoutes.getDataset, { id: 'x' })).toBe('/v1/configuration/datasets/x');
  });

  it('routePath fills and encodes path parameters, and refuses a missing one', () => {
    expect(routePath(apiRoutes.nodeByEra, { era: 'a b/c' })).toBe('/v1/state/nodes/by_era/a%20b%2Fc');
    expect(routePath(apiRoutes.listDatasets)).toBe('/v1/configuration/datasets');
    expect(() => routePath(apiRoutes.updateDataset, {})).toThrow(/needs the parameter id/);
  });
});
