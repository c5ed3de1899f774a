import { AppError, describeError } from "../lib/errors";

/**
 * How a failed read in one region should be treated:
 * - "not-found": the secret (or the requested stage) is not in that region: try the next region;
 * - "transient": throttling, 5xx, timeouts, network failures: worth serving the last good value;
 * - "permanent": access denied, validation, an unusable value: never masked by a stale value.
 */
export type FailureKind = "not-found" | "transient" | "permanent";

const NOT_FOUND = new Set(["ResourceNotFoundException", "ParameterNotFound", "ParameterVersionNotFound"]);

const TRANSIENT = new Set([
  "ThrottlingException",
  "Throttling",
  "ThrottledException",
  "TooManyRequestsException",
  "RequestLimitExceeded",
  "InternalServiceError",
  "InternalServiceErrorException",
  "InternalFailure",
  "InternalServerError",
  "ServiceUnavailable",
  "ServiceUnavailableException",
  "RequestTimeout",
  "RequestTimeoutException",
  "TimeoutError",
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ENETUNREACH",
  "EHOSTUNREACH",
]);

/** A value was read but cannot be used as a token (binary, empty). Always permanent. */
export class InvalidTokenValueError extends AppError {
  override name = "InvalidTokenValueError";
}

/** Classify an error thrown by an SDK call (or by our own checks of its result). */
export function classifyFailure(error: unknown): FailureKind {
  if (error instanceof AppError) return "permanent";
  if (!error || typeof error !== "object") return "permanent";
  const e = error as {
    name?: unknown;
    code?: unknown;
    Code?: unknown;
    $retryable?: unknown;
    $metadata?: { httpStatusCode?: unknown };
  };
  const names = [e.name, e.code, e.Code].filter((n): n is string => typeof n === "string");
  if (names.some((n) => NOT_FOUND.has(n))) return "not-found";
  if (names.some((n) => TRANSIENT.has(n))) return "transient";
  if (e.$retryable) return "transient";
  const status = e.$metadata?.httpStatusCode;
  if (typeof status === "number") return status === 429 || status >= 500 ? "transient" : "permanent";
  // Credential problems (no credentials, expired session) are not fixed by waiting.
  if (names.some((n) => /Credentials?ProviderError|ExpiredToken|UnrecognizedClient/.test(n)))
    return "permanent";
  // An SDK error without an HTTP status: the request never completed (DNS, connection, timeout).
  // Anything else (a bug, a TypeError) must not be hidden behind a stale value.
  return e.$metadata ? "transient" : "permanent";
}

/** What went wrong in one region, safe to log: ids, codes and messages, never a value. */
export interface RegionFailure {
  region: string;
  kind: FailureKind;
  error: { name: string; message: string; code?: string };
}

export function regionFailure(region: string, error: unknown): RegionFailure {
  return { region, kind: classifyFailure(error), error: describeError(error) };
}

/**
 * The token could not be read from any region. `kind` is "transient" only when no region gave a
 * permanent answer and at least one region failed transiently; "not-found" when every region said
 * the secret (or stage) does not exist; otherwise "permanent".
 */
export class TokenReadError extends AppError {
  override name = "TokenReadError";
  readonly kind: FailureKind;
  constructor(
    readonly secretId: string,
    readonly failures: readonly RegionFailure[],
    options?: { cause?: unknown; subject?: string },
  ) {
    const kind = aggregateKind(failures);
    const detail = failures.map((f) => `${f.region}: ${f.error.name}: ${f.error.message}`).join("; ");
    const subject = options?.subject ?? "secret";
    super(`could not read ${subject} ${secretId} (${kind}): ${detail || "no region to read from"}`, options);
    this.kind = kind;
  }

  get transient(): boolean {
    return this.kind === "transient";
  }
}

export function aggregateKind(failures: readonly RegionFailure[]): FailureKind {
  if (failures.length === 0) return "permanent";
  if (failures.some((f) => f.kind === "permanent")) return "permanent";
  if (failures.every((f) => f.kind === "not-found")) return "not-found";
  return "transient";
}

/**
 * Log fields for an error from the reader. A TokenReadError is already assembled from redacted
 * parts, so it is described structurally instead of through describeError, whose token-shaped
 * redaction would also blank long AWS error names such as ResourceNotFoundException.
 */
export function describeReadError(error: unknown): Record<string, unknown> {
  if (error instanceof TokenReadError) {
    return { name: error.name, kind: error.kind, secretId: error.secretId, failures: error.failures };
  }
  return describeError(error);
}

/**
 * A one-line message safe to print. Our own errors (AppError) are assembled from ids, codes and
 * already-redacted parts by contract (shared/lib/errors.ts), so they are printed as they are; anything
 * else goes through describeError's redaction.
 */
export function readErrorMessage(error: unknown): string {
  return error instanceof AppError ? error.message : describeError(error).message;
}
