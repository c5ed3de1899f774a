/**
 * What a sandbox part started, to be stopped in reverse order of start, each even when another one
 * failed to stop: a world or a test harness that fails half-way still stops what it had started.
 */
export interface Cleanups {
  push(cleanup: { what: string; run: () => Promise<void> | void }): void;
  /** Runs (and forgets) every cleanup, newest first; rejects naming each one that failed. */
  runAll(): Promise<void>;
}

export function createCleanups(failure: string): Cleanups {
  const cleanups: Array<{ what: string; run: () => Promise<void> | void }> = [];
  return {
    push: (cleanup) => void cleanups.push(cleanup),
    async runAll() {
      const errors: unknown[] = [];
      for (const cleanup of cleanups.splice(0).reverse()) {
        try {
          await cleanup.run();
        } catch (error) {
          errors.push(new Error(`stopping ${cleanup.what} failed: ${String(error)}`, { cause: error }));
        }
      }
      if (errors.length === 1) throw errors[0];
      if (errors.length > 1) throw new AggregateError(errors, failure);
    },
  };
}
