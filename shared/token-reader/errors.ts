import { classifyAwsFailure, type FailureKind } from "../lib/aws/errors";
import { AppError, describeError } from "../lib/errors";

/** A value was read but cannot be used as a token (binary, empty). Always permanent. */
export class InvalidTokenValueError extends AppError {
  override name = "InvalidTokenValueError";
}

/**
 * What went wrong in one region, safe to log: ids, codes and messages, never a value. Its kind
 * (shared/lib/aws/errors.ts classifyAwsFailure) decides: "not-found" tries the next region,
 * "transient" may serve the last good value, "permanent" is never masked by a stale value.
 */
export interface RegionFailure {
  region: string;
  kind: FailureKind;
  error: { name: string; message: string; code?: string };
}

export function regionFailure(region: string, error: unknown): RegionFailure {
  return { region, kind: classifyAwsFailure(error), error: describeError(error) };
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
