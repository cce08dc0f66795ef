/**
 * The package directories the plugin needs at run time, for the managed plugin's rootfs
 * (managed/build.sh): its production dependencies, found as Node finds them (each
 * package's node_modules, then its parents'), transitively. Copying them at the same
 * paths relative to the repository keeps Node's resolution exactly as in the repository
 * (workspace links included), with no bundler and no npm install.
 *
 * Usage: node packageClosure.js <package dir> <repository root> — prints one path (relative to the root) a line.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface PackageFs {
  /** package.json of `dir`, or undefined if there is none. */
  readManifest(
    dir: string,
  ): { dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> } | undefined;
  /** The real path (symlinks resolved). */
  realpath(p: string): string;
}

export const nodeFs: PackageFs = {
  readManifest: (dir) => {
    try {
      return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as ReturnType<
        PackageFs['readManifest']
      >;
    } catch {
      return undefined;
    }
  },
  realpath: (p) => fs.realpathSync(p),
};

/** Where Node finds `name` from a package at `from` (the node_modules of it and its parents up to `root`). */
export function locate(name: string, from: string, root: string, pfs: PackageFs): string | undefined {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'node_modules', name);
    if (pfs.readManifest(candidate) !== undefined) return candidate;
    if (dir === root || path.dirname(dir) === dir) return undefined;
  }
}

/**
 * Every package directory reached from `start` (real paths, `start` included) and the
 * links by which they are reached (node_modules entries that are symlinks, e.g. workspaces).
 * A missing optional dependency is skipped; a missing required one throws.
 */
export function packageClosure(
  start: string,
  root: string,
  pfs: PackageFs = nodeFs,
): { packages: string[]; links: Array<{ at: string; to: string }> } {
  const seen = new Set<string>();
  const links = new Map<string, string>();
  const queue = [pfs.realpath(start)];
  while (queue.length > 0) {
    const dir = queue.shift() as string;
    if (seen.has(dir)) continue;
    seen.add(dir);
    const m = pfs.readManifest(dir);
    const optional = new Set(Object.keys(m?.optionalDependencies ?? {}));
    for (const name of new Set([...Object.keys(m?.dependencies ?? {}), ...optional])) {
      const at = locate(name, dir, root, pfs);
      if (at === undefined) {
        if (optional.has(name)) continue;
        throw new Error(`${name} (a dependency of ${dir}) is not installed`);
      }
      const real = pfs.realpath(at);
      if (real !== at) links.set(at, real);
      queue.push(real);
    }
  }
  return { packages: [...seen].sort(), links: [...links].map(([at, to]) => ({ at, to })) };
}

if (require.main === module) {
  const [start, root] = process.argv.slice(2);
  if (start === undefined || root === undefined) {
    process.stderr.write('usage: packageClosure <package dir> <repository root>\n');
    process.exit(2);
  }
  const r = packageClosure(path.resolve(start), path.resolve(root));
  const rel = (p: string) => path.relative(path.resolve(root), p);
  for (const p of r.packages) process.stdout.write(`package ${rel(p)}\n`);
  for (const l of r.links) process.stdout.write(`link ${rel(l.at)} ${rel(l.to)}\n`);
}
