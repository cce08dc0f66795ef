/**
 * `@flocker/runtime/browser` is what the web UI (a Vite bundle) imports: nothing it loads may need a Node built-in.
 * The main entry re-exports hostCheck (node:net), which Vite externalised with a warning at every build (s28 closing).
 * Walks the compiled entry's require() graph, as the bundler does.
 */
import { builtinModules } from 'node:module';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as browserEntry from '@flocker/runtime/browser';
import * as mainEntry from '@flocker/runtime';

const builtins = new Set(builtinModules);

/** Every module id required from `file` and, for relative ones, from the files they load. */
function requiredFrom(file: string, seen = new Set<string>()): string[] {
  if (seen.has(file)) return [];
  seen.add(file);
  const ids = [...fs.readFileSync(file, 'utf8').matchAll(/require\("([^"]+)"\)/g)].map((m) => m[1] ?? '');
  return ids.flatMap((id) =>
    id.startsWith('.') ? [id, ...requiredFrom(`${path.resolve(path.dirname(file), id)}.js`, seen)] : [id],
  );
}

describe('@flocker/runtime/browser', () => {
  const entry = require.resolve('@flocker/runtime/browser');

  it('loads no Node built-in module (node:net, fs, …) directly or through its imports', () => {
    const ids = requiredFrom(entry);
    expect(ids.length).toBeGreaterThan(0);
    expect(ids.filter((id) => id.startsWith('node:') || builtins.has(id))).toEqual([]);
  });

  it('offers the helpers the main entry offers, except the Host check', () => {
    const browser = Object.keys(browserEntry).sort();
    const main = Object.keys(mainEntry);
    expect(browser).toEqual(
      main.filter((name) => !['hostAllowList', 'hostRefusal', 'parseHost'].includes(name)).sort(),
    );
    expect(browser).toContain('errorMessage');
  });
});
