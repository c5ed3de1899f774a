/**
 * The failures the Buildkite stand-in injects on request (latency, dropped sockets, error
 * statuses, 429s, seeded flakiness, a create that commits but answers 502) and the REST rate
 * limits: 200 requests/min per organization with `RateLimit-*` headers and a 429 once exceeded
 * (https://buildkite.com/docs/apis/rest-api/rate-limits), and 50 per API-token user.
 */
import { STATUS_CODES } from "node:http";
import { seededRandom } from "../../lib/seeded-random";
import { json, message, type Reply } from "./reply";
import type { FlakyOptions } from "./types";

const ORG_LIMIT = 200;
const USER_LIMIT = 50;
const WINDOW_MS = 60_000;

function rateLimitHeaders(orgRemaining: number, userRemaining: number, resetSeconds: number) {
  return {
    "RateLimit-Limit": String(ORG_LIMIT),
    "RateLimit-Remaining": String(orgRemaining),
    "RateLimit-Reset": String(resetSeconds),
    "RateLimit-User-Limit": String(USER_LIMIT),
    "RateLimit-User-Remaining": String(userRemaining),
    "RateLimit-User-Reset": String(resetSeconds),
  };
}

export function tooManyRequests(resetSeconds: number): Reply {
  return json(
    429,
    { message: "You have hit the rate limit for this organization. Please wait before retrying." },
    rateLimitHeaders(0, 0, resetSeconds),
  );
}

export interface WindowHit {
  headers: Record<string, string>;
  exceeded: boolean;
  resetSeconds: number;
}

/**
 * Fixed one-minute windows aligned to the clock, like "requests this minute". There is a single
 * API token, so the user and org budgets count the same requests against different limits.
 */
export class RateLimitWindow {
  private start = Number.NEGATIVE_INFINITY;
  private count = 0;

  hit(nowMs: number): WindowHit {
    const start = Math.floor(nowMs / WINDOW_MS) * WINDOW_MS;
    if (start !== this.start) {
      this.start = start;
      this.count = 0;
    }
    this.count++;
    const resetSeconds = Math.max(1, Math.ceil((start + WINDOW_MS - nowMs) / 1000));
    return {
      headers: rateLimitHeaders(
        Math.max(0, ORG_LIMIT - this.count),
        Math.max(0, USER_LIMIT - this.count),
        resetSeconds,
      ),
      exceeded: this.count > USER_LIMIT || this.count > ORG_LIMIT,
      resetSeconds,
    };
  }

  clear(): void {
    this.start = Number.NEGATIVE_INFINITY;
    this.count = 0;
  }
}

function knobCount(count: number): number {
  if (!Number.isInteger(count) || count < 0)
    throw new RangeError(`count must be a non-negative integer: ${count}`);
  return count;
}

/** The fault knobs and the rate-limit window; `reset()` puts them all back. */
export class Faults {
  readonly rateLimit = new RateLimitWindow();
  enforceRateLimits = false;
  latencyMs = 0;
  private dropQueue = 0;
  private failQueue: number[] = []; // one status per request to fail
  private rateLimitQueue: number[] = []; // one resetSeconds per request to throttle
  private createAfterCommitQueue = 0;
  private flaky: { probability: number; random: () => number } | undefined;

  constructor(private readonly defaultEnforcement: boolean) {
    this.reset();
  }

  setLatency(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`latency must be a non-negative number: ${ms}`);
    this.latencyMs = ms;
  }

  failNext(count: number, status = 500): void {
    if (!Number.isInteger(status) || status < 400 || status > 599)
      throw new RangeError(`not an error status: ${status}`);
    for (let i = knobCount(count); i > 0; i--) this.failQueue.push(status);
  }

  rateLimitNext(count: number, resetSeconds: number): void {
    for (let i = knobCount(count); i > 0; i--) this.rateLimitQueue.push(resetSeconds);
  }

  dropNext(count: number): void {
    this.dropQueue += knobCount(count);
  }

  setFlaky(options: FlakyOptions | undefined): void {
    if (options && !(options.probability >= 0 && options.probability <= 1)) {
      throw new RangeError(`probability must be in [0, 1]: ${options.probability}`);
    }
    this.flaky = options && { probability: options.probability, random: seededRandom(options.seed) };
  }

  failNextCreateAfterCommit(count: number): void {
    this.createAfterCommitQueue += knobCount(count);
  }

  /** Whether this request's socket is to be destroyed without a response (consumes one). */
  takeDrop(): boolean {
    if (this.dropQueue === 0) return false;
    this.dropQueue--;
    return true;
  }

  /** Whether this successful create is to answer 502 after committing (consumes one). */
  takeCreateAfterCommit(): boolean {
    if (this.createAfterCommitQueue === 0) return false;
    this.createAfterCommitQueue--;
    return true;
  }

  /**
   * The failure this request gets before it reaches auth or a route, if any: explicit knobs win
   * over flakiness, and an enforced rate limit comes last, as a load balancer or rate limiter in
   * front of the real API would.
   */
  injected(window: WindowHit | undefined): Reply | undefined {
    const status = this.failQueue.shift();
    if (status !== undefined) return message(status, STATUS_CODES[status] ?? "Injected failure");
    const resetSeconds = this.rateLimitQueue.shift();
    if (resetSeconds !== undefined) return tooManyRequests(resetSeconds);
    if (this.flaky && this.flaky.random() < this.flaky.probability) {
      return this.flaky.random() < 0.5 ? message(502, "Bad Gateway") : tooManyRequests(1);
    }
    if (window?.exceeded && this.enforceRateLimits) return tooManyRequests(window.resetSeconds);
    return undefined;
  }

  reset(): void {
    this.enforceRateLimits = this.defaultEnforcement;
    this.latencyMs = 0;
    this.dropQueue = 0;
    this.failQueue = [];
    this.rateLimitQueue = [];
    this.createAfterCommitQueue = 0;
    this.flaky = undefined;
    this.rateLimit.clear();
  }
}
