/**
 * The metadata key of a clone's implicit snapshot (the clone's dataset id, written by the control service, read by
 * the API client's repeated-create check and the CSI driver) is one constant, METADATA_CLONE_KEY: its text is in the
 * stored states of every cluster, so it never changes, and no package spells it again (three copies before).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { METADATA_CLONE_KEY } from './schemas';

const PACKAGES = join(__dirname, '..', '..');

/** Non-test TypeScript sources under `dir` (src/ trees only). */
function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (name === 'node_modules' || name === 'dist') return [];
    if (statSync(path).isDirectory()) return sources(path);
    return /\.tsx?$/.test(name) && !/\.test\.tsx?$/.test(name) ? [path] : [];
  });
}

it('is the stored text, spelled in @flocker/api schemas.ts only', () => {
  expect(METADATA_CLONE_KEY).toBe('clusterhq:flocker:clone');
  const spelled = readdirSync(PACKAGES)
    .flatMap((pkg) => {
      const src = join(PACKAGES, pkg, 'src');
      try {
        return statSync(src).isDirectory() ? sources(src) : [];
      } catch {
        return [];
      }
    })
    .filter((file) => /['"`]clusterhq:flocker:clone['"`]/.test(readFileSync(file, 'utf8')))
    .map((file) => relative(PACKAGES, file));
  expect(spelled).toEqual(['api/src/schemas.ts']);
});
