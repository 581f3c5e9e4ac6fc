/**
 * Calls `fn` on every item, in order, with at most `jobs` calls in flight. After the first failure
 * no new call starts; the ones running are awaited (each leaves its output whole or absent) and
 * the first error is thrown.
 */
export async function forEachConcurrent<T>(
  items: readonly T[],
  jobs: number,
  fn: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failed = false;
  let first: unknown;
  const lane = async () => {
    while (!failed && next < items.length) {
      const index = next++;
      try {
        await fn(items[index] as T, index);
      } catch (error) {
        if (!failed) first = error;
        failed = true;
      }
    }
  };
  const lanes = Math.max(1, Math.min(Math.floor(jobs), items.length));
  await Promise.all(Array.from({ length: lanes }, lane));
  if (failed) throw first;
}
