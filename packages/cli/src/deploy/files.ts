/**
 * flocker-deploy's input files: YAML text → JSON documents, checked locally with
 * the same readers the control service uses, so a mistake is reported with the
 * file name and line before anything is sent.
 */
import { isMap, isPair, isScalar, LineCounter, parseDocument, type Document } from 'yaml';
import {
  type Application,
  type FileIssue,
  formatIssuePath,
  parseApplicationFile,
  parseDeploymentFile,
} from '@flocker/api';

export class DeployFileError extends Error {
  readonly code = 'INVALID_CONFIGURATION_FILE';
  constructor(message: string) {
    super(message);
    this.name = 'DeployFileError';
  }
}

export interface ParsedYaml {
  json: unknown;
  /** `file:line:col` of a path inside the document (the nearest enclosing node that exists). */
  where(path: readonly (string | number)[]): string;
}

export function parseYaml(text: string, file: string): ParsedYaml {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const pos = e?.linePos?.[0];
    // The yaml library ends its first line with "at line L, column C:" before a code frame: the position leads here.
    const first = ((e?.message ?? 'invalid YAML').split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?\s*$/, '');
    throw new DeployFileError(`${file}${pos ? `:${pos.line}:${pos.col}` : ''}: invalid YAML: ${first}`);
  }
  const where = (path: readonly (string | number)[]): string => {
    for (let n = path.length; n >= 0; n--) {
      const offset = offsetOf(doc, path.slice(0, n), n < path.length ? path[n] : undefined);
      if (offset !== undefined) {
        const { line, col } = lineCounter.linePos(offset);
        return `${file}:${line}:${col}`;
      }
    }
    return file;
  };
  return { json: doc.toJS(), where };
}

/** Where a node starts; for a missing key under a mapping, where the mapping starts. */
function offsetOf(
  doc: Document,
  path: readonly (string | number)[],
  missingKey: string | number | undefined,
): number | undefined {
  const node: unknown = path.length === 0 ? doc.contents : doc.getIn(path, true);
  if (node === undefined || node === null) return undefined;
  // Point an unknown or misspelt key at the key itself.
  if (missingKey !== undefined && isMap(node)) {
    const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(missingKey));
    if (pair !== undefined && isScalar(pair.key) && pair.key.range) return pair.key.range[0];
  }
  if (typeof node === 'object' && 'range' in node) {
    const range = (node as { range?: [number, number, number] | null }).range;
    if (range) return range[0];
  }
  return undefined;
}

function raise(file: ParsedYaml, what: string, issues: FileIssue[]): never {
  const lines = issues.map((i) => `${file.where(i.path)}: ${formatIssuePath(i.path)}: ${i.message}`);
  throw new DeployFileError(`the ${what} file is invalid:\n  ${lines.join('\n  ')}`);
}

export interface DeployFiles {
  /** The JSON documents to send to /v1/configuration/_compose. */
  deployment: Record<string, unknown>;
  applications: Record<string, unknown>;
  /** What they say: the applications, and application name → node key (address or UUID). */
  apps: Record<string, Application>;
  placement: Map<string, string>;
}

/** Both files, parsed and checked. */
export function readDeployFiles(
  deployment: { text: string; file: string },
  application: { text: string; file: string },
): DeployFiles {
  const dep = parseYaml(deployment.text, deployment.file);
  const depResult = parseDeploymentFile(dep.json);
  if (!depResult.ok) raise(dep, 'deployment', depResult.issues);
  const app = parseYaml(application.text, application.file);
  const appResult = parseApplicationFile(app.json);
  if (!appResult.ok) raise(app, 'application', appResult.issues);
  for (const [name, node] of depResult.value) {
    if (appResult.value[name] === undefined) {
      throw new DeployFileError(
        `${dep.where(['nodes', node])}: application "${name}" is not defined in ${application.file}`,
      );
    }
  }
  return {
    deployment: dep.json as Record<string, unknown>,
    applications: app.json as Record<string, unknown>,
    apps: appResult.value,
    placement: depResult.value,
  };
}
