/**
 * Runs task(0..count-1) with at most `concurrency` in flight. The first failure stops new tasks from
 * starting, waits for the running ones, and is rethrown (so no task is left writing after we return).
 */
export async function forEachIndex(
  count: number,
  concurrency: number,
  task: (index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failed = false;
  let firstError: unknown;
  const worker = async () => {
    while (!failed && next < count) {
      const i = next++;
      try {
        await task(i);
      } catch (e) {
        if (!failed) firstError = e;
        failed = true;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, count)) }, worker));
  if (failed) throw firstError;
}
