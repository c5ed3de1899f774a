import { InputError } from "../lib/errors";
import { createLogger, type Logger, registerSecret } from "../lib/log";
import { describeReadError, type RegionFailure, regionFailure, TokenReadError } from "./errors";
import { type FetchedToken, secretIdForRegion, type TokenFetcher, type TokenSource } from "./sources";

/**
 * The one token reader: an in-memory cache with a max age, single flight, forced refresh,
 * stale-on-error within a bound, and region fallback from the local replica to the primary.
 *
 * Why not Powertools Parameters (`@aws-lambda-powertools/parameters`)? It was evaluated (and is
 * benchmarked against in scripts/bench-token-reader.ts). Its providers cache with a max age and
 * support forceFetch, but:
 * - no single flight: N concurrent reads of a cold or expired entry make N API calls;
 * - no stale-on-error: once an entry has expired, a throttled or failed call throws;
 * - no region fallback, and one client per provider;
 * - `get` returns the value only, never the VersionId, which the read-token Lambda returns and
 *   which is how rotation is observed;
 * - the cache key ignores sdkOptions (VersionStage), and the clock is not injectable.
 * Each of those would need a wrapper around it larger than this cache, so the cache is ours and the
 * SDK does the calls (with its own retries and our timeouts).
 */

export interface TokenReaderOptions {
  /**
   * Secret name or complete ARN. A name is used as is in every region; an ARN is rewritten to each
   * region's replica ARN (same account, same suffix). The SSM source always uses the name.
   */
  secretId: string;
  /** Regions to try, in order: usually [local replica, ..., primary]. At least one. */
  regions: readonly string[];
  /**
   * Where to read from, with its per-region client factory:
   * `secretsManagerSource(secretsManagerClients())` (secrets-manager-source.ts) or
   * `ssmReferenceSource(ssmClients())` (ssm-source.ts: `/aws/reference/secretsmanager/<name>`,
   * with decryption). Injected rather than chosen by name so that a bundle carries only the SDK
   * client it uses, and tests pass fakes.
   */
  source: TokenFetcher;
  /** Default AWSCURRENT. */
  versionStage?: string;
  /** A cached value younger than this is returned without a call. Default 60 s; 0 disables caching. */
  maxAgeMs?: number;
  /**
   * After a TRANSIENT failure (throttling, 5xx, timeout, network), the last good value is served
   * while it is at most this much older than maxAgeMs allows (age ≤ maxAgeMs + maxStaleMs), with
   * `stale: true`. Permanent failures (access denied, validation, not found in every region, an
   * unusable value) are never masked. Default 5 minutes; 0 disables. A masked error is logged
   * (warn); an error that is thrown is left to the caller to report.
   */
  maxStaleMs?: number;
  /**
   * After a transient failure that was answered with a stale value, further reads serve that stale
   * value without a call for this long, so an outage does not turn every read into a slow call that
   * ends in the same stale value. Forced refreshes always call. Default 1 s.
   */
  errorBackoffMs?: number;
  /** Milliseconds since the epoch. Default Date.now. */
  now?: () => number;
  logger?: Logger;
}

export interface TokenValue {
  token: string;
  versionId: string | undefined;
  /** The region that answered. */
  region: string;
  fetchedAt: Date;
  source: TokenSource;
  /** True when served from the cache after its max age because a refresh failed transiently. */
  stale: boolean;
}

export interface ReadOptions {
  /** Skip the cache and call now (concurrent forced reads still share one call). */
  forceRefresh?: boolean;
}

export interface TokenReader {
  read(options?: ReadOptions): Promise<TokenValue>;
  /** Forget the cached value. */
  clear(): void;
}

interface Entry extends FetchedToken {
  region: string;
  fetchedAtMs: number;
  seq: number;
}

interface Flight {
  seq: number;
  forced: boolean;
  promise: Promise<TokenValue>;
}

export const DEFAULT_MAX_AGE_MS = 60_000;
export const DEFAULT_MAX_STALE_MS = 5 * 60_000;
export const DEFAULT_ERROR_BACKOFF_MS = 1_000;

export function createTokenReader(options: TokenReaderOptions): TokenReader {
  const regions = [...new Set(options.regions.map((r) => r.trim()).filter(Boolean))];
  if (regions.length === 0) throw new InputError("token reader: regions must name at least one region");
  if (!options.secretId.trim()) throw new InputError("token reader: secretId is required");
  const secretId = options.secretId.trim();
  const fetcher = options.source;
  const source: TokenSource = fetcher.name;
  const stage = options.versionStage ?? "AWSCURRENT";
  const maxAgeMs = nonNegative("maxAgeMs", options.maxAgeMs ?? DEFAULT_MAX_AGE_MS);
  const maxStaleMs = nonNegative("maxStaleMs", options.maxStaleMs ?? DEFAULT_MAX_STALE_MS);
  const errorBackoffMs = nonNegative("errorBackoffMs", options.errorBackoffMs ?? DEFAULT_ERROR_BACKOFF_MS);
  const now = options.now ?? Date.now;
  const logger = (options.logger ?? createLogger("token-reader")).child({
    secretId,
    source,
    versionStage: stage,
  });

  let cache: Entry | undefined;
  let inflight: Flight | undefined;
  let seqCounter = 0;
  /** Set when a transient failure was answered with the stale value; cleared by any success. */
  let backoffUntil = 0;

  const view = (e: Entry, stale: boolean): TokenValue => ({
    token: e.token,
    versionId: e.versionId,
    region: e.region,
    fetchedAt: new Date(e.fetchedAtMs),
    source,
    stale,
  });
  const staleUsable = (e: Entry, at: number) => at - e.fetchedAtMs <= maxAgeMs + maxStaleMs;

  function fetchOnce(region: string): Promise<FetchedToken> {
    return fetcher.fetch(region, secretIdForRegion(secretId, region), stage);
  }

  async function fetchAcrossRegions(): Promise<Omit<Entry, "seq">> {
    const failures: RegionFailure[] = [];
    for (const region of regions) {
      try {
        const fetched = await fetchOnce(region);
        registerSecret(fetched.token);
        if (failures.length > 0) {
          logger.warn("read the token from a fallback region", { region, failures });
        }
        return { ...fetched, region, fetchedAtMs: now() };
      } catch (error) {
        failures.push(regionFailure(region, error));
      }
    }
    throw new TokenReadError(secretId, failures);
  }

  async function run(seq: number): Promise<TokenValue> {
    try {
      const fetched = await fetchAcrossRegions();
      const entry: Entry = { ...fetched, seq };
      // A slower, older call must not overwrite what a newer one stored.
      if (!cache || entry.seq > cache.seq) cache = entry;
      backoffUntil = 0;
      return view(entry, false);
    } catch (error) {
      const at = now();
      const transient = error instanceof TokenReadError && error.transient;
      if (transient && cache && staleUsable(cache, at)) {
        backoffUntil = at + errorBackoffMs;
        logger.warn("refresh failed transiently; serving the last good token", {
          error: describeReadError(error),
          versionId: cache.versionId,
          ageMs: at - cache.fetchedAtMs,
        });
        return view(cache, true);
      }
      // Not masked: the caller gets the error (and decides how to report it).
      throw error;
    } finally {
      if (inflight?.seq === seq) inflight = undefined;
    }
  }

  function start(forced: boolean): Promise<TokenValue> {
    const seq = ++seqCounter;
    // run() awaits before it can reach its `finally`, so `inflight` is set before it is cleared.
    const promise = run(seq);
    inflight = { seq, forced, promise };
    return promise;
  }

  return {
    read({ forceRefresh = false } = {}) {
      const at = now();
      if (!forceRefresh && cache) {
        if (at - cache.fetchedAtMs < maxAgeMs) return Promise.resolve(view(cache, false));
        if (at < backoffUntil && staleUsable(cache, at)) return Promise.resolve(view(cache, true));
      }
      // Single flight: join the call in progress. A forced read joins only a forced call, since a
      // plain call may have started before whatever made the caller distrust the cached token.
      if (inflight && (!forceRefresh || inflight.forced)) return inflight.promise;
      return start(forceRefresh);
    },
    clear() {
      cache = undefined;
      backoffUntil = 0;
    },
  };
}

function nonNegative(name: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) throw new InputError(`token reader: ${name} must be ≥ 0`);
  return value;
}
