/**
 * At most `n` calls in flight per key (a region): the rest queue in call order. Auto Scaling's
 * request bucket is per account and Region and shared with every scaler in it, and a thousand calls
 * fired at once only turn into throttling, retries and timeouts (measured in the 20 × 1,000 sandbox:
 * 950 concurrent StartInstanceRefresh calls, 331 of them past the 10 s request timeout).
 */
export type Limit = <T>(key: string, run: () => Promise<T>) => Promise<T>;

/** How many Auto Scaling calls of one kind a run keeps in flight per region (observe and act). */
export const CALLS_PER_REGION = 10;

export function perKeyLimit(n: number): Limit {
  if (!Number.isInteger(n) || n < 1) throw new Error("perKeyLimit: n must be a whole number ≥ 1");
  const active = new Map<string, number>();
  const queued = new Map<string, Array<() => void>>();
  const release = (key: string) => {
    const next = queued.get(key)?.shift();
    if (next) next();
    else active.set(key, (active.get(key) ?? 1) - 1);
  };
  return async <T>(key: string, run: () => Promise<T>): Promise<T> => {
    if ((active.get(key) ?? 0) < n) active.set(key, (active.get(key) ?? 0) + 1);
    else
      await new Promise<void>((resolve) => {
        const waiting = queued.get(key) ?? [];
        waiting.push(resolve);
        queued.set(key, waiting);
      });
    try {
      return await run();
    } finally {
      release(key);
    }
  };
}
