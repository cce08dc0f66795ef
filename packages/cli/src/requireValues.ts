import { missingValueProblem, ValuedOptions } from './validation';

/** The yargs instance yargs hands a middleware as its second argument (untyped in its .d.ts). */
function isParser(x: unknown): x is { getOptions: () => unknown } {
  return typeof x === 'object' && x !== null && typeof (x as { getOptions?: unknown }).getOptions === 'function';
}

/**
 * A middleware (run before validation) refusing an option that takes a value given without one (review TN F4):
 * yargs would fill it with its default or ''. `args` is the argv the parser reads; `refuse` ends the command.
 */
export function refuseMissingValues(args: readonly string[], refuse: (why: string) => void) {
  return (_argv: unknown, parser?: unknown): void => {
    if (!isParser(parser)) throw new Error('yargs did not hand its parser to the middleware');
    // The current command's options: yargs runs each command's builder on this instance before the middleware.
    const why = missingValueProblem(args, ValuedOptions.parse(parser.getOptions()));
    if (why !== undefined) refuse(why);
  };
}
