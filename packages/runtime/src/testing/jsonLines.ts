/**
 * Reading the services' JSON-lines logs (winston's JSON format: one object a line) in tests, benchmarks and traces:
 * the e2e traces and the volume plugin's A/B bench read the same logs. Dependency-free: any schema with zod's
 * safeParse shape will do.
 */

/** What jsonLines needs of a schema (a zod schema has it). */
export interface LineSchema<T> {
  safeParse(value: unknown): { success: true; data: T } | { success: false };
}

/**
 * The lines of a JSON-lines log that are JSON objects parsing as `schema`, in order; others (not JSON, not an
 * object, another shape) skipped. `contains`: only lines holding this text are parsed (a cheap filter: a big log's
 * other lines cost no JSON.parse).
 */
export function* jsonLines<T>(text: string, schema: LineSchema<T>, contains?: string): Generator<T> {
  for (const line of text.split('\n')) {
    if (contains !== undefined && !line.includes(contains)) continue;
    // An object's first character after blanks: other lines are not parsed (a thrown SyntaxError each costs more).
    if (!line.trimStart().startsWith('{')) continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      continue;
    }
    const r = schema.safeParse(parsed);
    if (r.success) yield r.data;
  }
}
