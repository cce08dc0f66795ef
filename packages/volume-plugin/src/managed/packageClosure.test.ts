import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { packageClosure } from './packageClosure';

describe('packageClosure', () => {
  let root: string;
  beforeEach(() => {
    root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-closure-')));
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  const pkg = (dir: string, manifest: object) => {
    fs.mkdirSync(path.join(root, dir), { recursive: true });
    fs.writeFileSync(path.join(root, dir, 'package.json'), JSON.stringify(manifest));
  };

  it('follows dependencies as Node resolves them: workspace links, nested versions, hoisted ones', () => {
    pkg('packages/plugin', { dependencies: { '@x/lib': '1', a: '1' } });
    pkg('packages/lib', { dependencies: { b: '2' } });
    fs.mkdirSync(path.join(root, 'node_modules/@x'), { recursive: true });
    fs.symlinkSync('../../packages/lib', path.join(root, 'node_modules/@x/lib'));
    pkg('node_modules/a', { dependencies: { b: '1' }, optionalDependencies: { gone: '1' } });
    pkg('node_modules/a/node_modules/b', {}); // a's own b@1
    pkg('node_modules/b', {}); // b@2, hoisted
    pkg('node_modules/unused', {});
    const r = packageClosure(path.join(root, 'packages/plugin'), root);
    expect(r.packages.map((p) => path.relative(root, p))).toEqual([
      'node_modules/a',
      'node_modules/a/node_modules/b',
      'node_modules/b',
      'packages/lib',
      'packages/plugin',
    ]);
    expect(r.links).toEqual([{ at: path.join(root, 'node_modules/@x/lib'), to: path.join(root, 'packages/lib') }]);
  });

  it('fails on a missing required dependency', () => {
    pkg('packages/plugin', { dependencies: { missing: '1' } });
    expect(() => packageClosure(path.join(root, 'packages/plugin'), root)).toThrow(/missing .* is not installed/);
  });
});
