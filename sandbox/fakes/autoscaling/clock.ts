/**
 * Time source for the simulation. Injecting it keeps the fleet deterministic under fake timers and
 * lets `Timers.close()` cancel every pending step, so closing a stand-in never leaves work behind.
 */
export interface Clock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** Tracks every timer the simulation starts so that `close()` can stop them all at once. */
export class Timers {
  readonly #clock: Clock;
  readonly #handles = new Set<unknown>();
  #closed = false;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  now(): number {
    return this.#clock.now();
  }

  /** Runs `callback` after `ms`, unless the timers are closed first. */
  after(ms: number, callback: () => void): void {
    if (this.#closed) return;
    const handle = this.#clock.setTimeout(() => {
      this.#handles.delete(handle);
      callback();
    }, ms);
    this.#handles.add(handle);
  }

  /**
   * Resolves after `ms`, or as soon as `signal` aborts. After `close()` it never resolves: the
   * simulation is over and whatever awaited it is simply dropped.
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (this.#closed) return new Promise<void>(() => {});
    return new Promise<void>((resolve) => {
      if (signal?.aborted) {
        resolve();
        return;
      }
      let handle: unknown;
      const wake = (): void => {
        this.#clock.clearTimeout(handle);
        this.#handles.delete(handle);
        signal?.removeEventListener("abort", wake);
        resolve();
      };
      handle = this.#clock.setTimeout(wake, Number.isFinite(ms) ? Math.max(0, ms) : 0);
      this.#handles.add(handle);
      signal?.addEventListener("abort", wake, { once: true });
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  close(): void {
    this.#closed = true;
    for (const handle of this.#handles) this.#clock.clearTimeout(handle);
    this.#handles.clear();
  }
}
