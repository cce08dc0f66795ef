/**
 * The order the routes are registered with express (issue 23): express tries its layers one by one for every
 * request, so the agent channel and the state list (every hop of a move: reports, long-polls, the waiter's reads)
 * go first. Reordering cannot change which route answers a request only because no two route templates overlap
 * (templatesOverlap; routeOrder.test checks the contract's routes); the order among the others is the contract's.
 */

/** Paths answered on every hop of a move (and every heartbeat): tried first. */
export function isHotPath(path: string): boolean {
  return path.startsWith('/v1/agent/') || path === '/v1/state/datasets';
}

/** The routes with the hot paths first, each group in its given order. */
export function hotFirst<R extends { readonly path: string }>(routes: readonly R[]): R[] {
  return [...routes.filter((r) => isHotPath(r.path)), ...routes.filter((r) => !isHotPath(r.path))];
}

/**
 * Whether some request path could match both templates (express/path-to-regexp templates of literal segments and
 * `:name` parameters, matched whole): the same number of segments, and at each one equal literals or a parameter.
 */
export function templatesOverlap(a: string, b: string): boolean {
  const [x, y] = [a.split('/'), b.split('/')];
  if (x.length !== y.length) return false;
  return x.every((s, i) => s === y[i] || s.startsWith(':') || (y[i] ?? '').startsWith(':'));
}
