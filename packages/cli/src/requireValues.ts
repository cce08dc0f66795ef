import type { Argv } from 'yargs';
import { missingValueProblem, ValuedOptions } from './validation';

/**
 * A middleware (run before validation) refusing an option that takes a value given without one (review TN F4):
 * yargs would fill it with its default or ''. `args` is the argv the parser reads; `refuse` ends the command.
 */
export function refuseMissingValues<T>(parser: Argv<T>, args: readonly string[], refuse: (why: string) => void) {
  return (): void => {
    // The command's options: yargs runs each command's builder on this same instance. getOptions is untyped.
    const options = ValuedOptions.parse((parser as unknown as { getOptions: () => unknown }).getOptions());
    const why = missingValueProblem(args, options);
    if (why !== undefined) refuse(why);
  };
}
