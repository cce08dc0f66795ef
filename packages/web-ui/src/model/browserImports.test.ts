/**
 * The browser bundle (src/app and the model it shares) takes @flocker/runtime through its browser-safe entry only:
 * the main entry re-exports hostCheck (node:net), which Vite externalised with a warning at every build (s28 closing).
 * @flocker/runtime's own browser.test checks that entry loads no Node built-in.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

const SRC = path.resolve(__dirname, '..', '..', 'src');

/** The bundle's source files (tests excluded: they run in Node). */
function bundled(): string[] {
  return ['app', 'model'].flatMap((dir) =>
    fs
      .readdirSync(path.join(SRC, dir))
      .filter((f) => /\.tsx?$/.test(f) && !f.endsWith('.test.ts') && !f.endsWith('.d.ts'))
      .map((f) => path.join(dir, f)),
  );
}

it("the browser app imports @flocker/runtime only as '@flocker/runtime/browser'", () => {
  const files = bundled();
  expect(files).toContain(path.join('app', 'App.tsx'));
  const imports = files.flatMap((f) =>
    [...fs.readFileSync(path.join(SRC, f), 'utf8').matchAll(/from '(@flocker\/runtime[^']*)'/g)].map(
      (m) => `${f}: ${m[1] ?? ''}`,
    ),
  );
  expect(imports.filter((i) => !i.endsWith(': @flocker/runtime/browser'))).toEqual([]);
});
