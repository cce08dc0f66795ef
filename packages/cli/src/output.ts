/**
 * `-o wide|json|yaml|name` and `-q` (issue 21): how a list or one object is printed. Pure: each
 * function returns the text to print.
 */
import { Document, visit } from 'yaml';
import { hasUnsafe, table, visible } from './format';

export const OUTPUT_FORMATS = ['wide', 'json', 'yaml', 'name'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export interface OutputArgs {
  json: boolean;
  output?: string | undefined;
  quiet?: boolean | undefined;
}

/** The format asked for: `--json` is `-o json`; neither: the human table. */
export function outputFormat(a: OutputArgs): OutputFormat | 'table' {
  if (a.json) return 'json';
  return (OUTPUT_FORMATS as readonly string[]).includes(a.output ?? '') ? (a.output as OutputFormat) : 'table';
}

/** Whether errors and warnings are JSON lines: `--json` or `-o json` among the arguments. */
export function wantsJson(argv: readonly string[]): boolean {
  return argv.some(
    (x, i) =>
      x === '--json' ||
      x === '--output=json' ||
      x === '-o=json' ||
      x === '-ojson' ||
      ((x === '-o' || x === '--output') && argv[i + 1] === 'json'),
  );
}

/** A value as JSON or YAML, else undefined (the caller prints its human form). */
export function structured(format: OutputFormat | 'table', value: unknown): string | undefined {
  if (format === 'json') return JSON.stringify(value, null, 2);
  if (format === 'yaml') {
    // A string with a control or bidi character is double-quoted, where the \uXXXX the printer shows it as is
    // YAML's own escape (a plain scalar would take it literally, and the yaml package leaves C1/bidi raw).
    const doc = new Document(value);
    visit(doc, {
      Scalar(_, node) {
        if (typeof node.value === 'string' && hasUnsafe(node.value)) node.type = 'QUOTE_DOUBLE';
      },
    });
    return doc.toString().trimEnd();
  }
  return undefined;
}

export interface ListSpec<T> {
  headers: string[];
  cells: (row: T) => string[];
  /** Extra columns for `-o wide`, appended. */
  wideHeaders?: string[];
  wideCells?: (row: T) => string[];
  /** `-o name`: one name a line. */
  name: (row: T) => string;
  /** `-q`: one id a line. */
  id: (row: T) => string;
}

export function renderList<T>(a: OutputArgs, rows: readonly T[], spec: ListSpec<T>): string {
  // One a line: a name holding a line feed must not read as two to a script (`-o name | xargs`).
  if (a.quiet === true) return rows.map((r) => visible(spec.id(r))).join('\n');
  const format = outputFormat(a);
  const s = structured(format, rows);
  if (s !== undefined) return s;
  if (format === 'name') return rows.map((r) => visible(spec.name(r))).join('\n');
  if (format === 'wide' && spec.wideHeaders && spec.wideCells) {
    const wide = spec.wideCells;
    return table(
      [...spec.headers, ...spec.wideHeaders],
      rows.map((r) => [...spec.cells(r), ...wide(r)]),
    );
  }
  return table(spec.headers, rows.map(spec.cells));
}
