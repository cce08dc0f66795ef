/**
 * One FlockerDockerStack for the enclosing describe block (jest hooks; not exported by
 * ./index, which the plugin benchmark loads outside jest).
 */
import { FlockerDockerStack, type FlockerDockerStackOptions } from './FlockerDockerStack';

/** Starts the stack before the block's tests and closes it after them; prints its logs after a failed test. */
export function dockerStackForSuite(
  use: (stack: FlockerDockerStack) => void,
  options: FlockerDockerStackOptions = {},
): void {
  let stack: FlockerDockerStack | undefined;

  beforeAll(async () => {
    stack = await FlockerDockerStack.start(options);
    use(stack);
  }, 180_000);

  afterAll(async () => {
    await stack?.close();
  }, 120_000);

  afterEach(() => {
    const state = expect.getState();
    if (stack !== undefined && state.assertionCalls !== state.numPassingAsserts) process.stderr.write(stack.logs());
  });
}
