import { AppError, describeError } from "../errors";

/**
 * What an AWS error says, read one way everywhere: by its error code. SDK v3 puts the service's
 * code in `name` (https://docs.aws.amazon.com/sdk-for-javascript/v3/developer-guide/handling-exceptions.html);
 * Node network errors and older shapes carry it in `code` / `Code`.
 */
export function awsErrorCodes(error: unknown): string[] {
  if (!error || typeof error !== "object") return [];
  const e = error as { name?: unknown; code?: unknown; Code?: unknown };
  return [e.name, e.code, e.Code].filter((n): n is string => typeof n === "string");
}

const hasCode = (error: unknown, codes: ReadonlySet<string>) =>
  awsErrorCodes(error).some((c) => codes.has(c));

/**
 * The thing asked for is not there: Secrets Manager (ResourceNotFoundException), SSM parameters
 * (ParameterNotFound, ParameterVersionNotFound), EC2 (InvalidInstanceID.NotFound), and the
 * services whose code is NotFoundException.
 */
const NOT_FOUND = new Set([
  "ResourceNotFoundException",
  "NotFoundException",
  "ParameterNotFound",
  "ParameterVersionNotFound",
  "InvalidInstanceID.NotFound",
]);
/** We may not see or do it (IAM/STS, EC2 and SNS spell it differently). */
const DENIED = new Set([
  "AccessDenied",
  "AccessDeniedException",
  "UnauthorizedOperation",
  "AuthorizationError",
]);
/** The request itself is wrong (Query-protocol services). */
const INVALID = new Set(["ValidationError", "InvalidParameterValue"]);
/** Refused before it ran because of a rate: nothing was done. */
const THROTTLED = new Set([
  "ThrottlingException",
  "Throttling",
  "ThrottledException",
  "TooManyRequestsException",
  "RequestLimitExceeded",
]);
/** No answer in time: the request may or may not have been carried out. */
const TIMED_OUT = new Set(["RequestTimeout", "RequestTimeoutException", "TimeoutError"]);
/** The service or the network failed: worth asking again later. */
const UNAVAILABLE = new Set([
  "InternalServiceError",
  "InternalServiceErrorException",
  "InternalFailure",
  "InternalServerError",
  "ServiceUnavailable",
  "ServiceUnavailableException",
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ENETUNREACH",
  "EHOSTUNREACH",
]);

export const isNotFound = (error: unknown): boolean => hasCode(error, NOT_FOUND);
export const isAccessDenied = (error: unknown): boolean => hasCode(error, DENIED);
export const isInvalidRequest = (error: unknown): boolean => hasCode(error, INVALID);
export const isThrottling = (error: unknown): boolean => hasCode(error, THROTTLED);
export const isTimeout = (error: unknown): boolean => hasCode(error, TIMED_OUT);
export const isUnavailable = (error: unknown): boolean => hasCode(error, UNAVAILABLE);

/**
 * How a failed call should be treated:
 * - "not-found": the thing (or the requested version) is not there;
 * - "transient": throttling, 5xx, timeouts, network failures: worth asking again later;
 * - "permanent": access denied, validation, our own checks, a bug: asking again will not help.
 */
export type FailureKind = "not-found" | "transient" | "permanent";

export function classifyAwsFailure(error: unknown): FailureKind {
  if (error instanceof AppError) return "permanent";
  if (!error || typeof error !== "object") return "permanent";
  if (isNotFound(error)) return "not-found";
  if (isThrottling(error) || isTimeout(error) || isUnavailable(error)) return "transient";
  const e = error as { $retryable?: unknown; $metadata?: { httpStatusCode?: unknown } };
  if (e.$retryable) return "transient";
  const status = e.$metadata?.httpStatusCode;
  if (typeof status === "number") return status === 429 || status >= 500 ? "transient" : "permanent";
  // Credential problems (no credentials, expired session) are not fixed by waiting.
  if (awsErrorCodes(error).some((n) => /Credentials?ProviderError|ExpiredToken|UnrecognizedClient/.test(n)))
    return "permanent";
  // An SDK error without an HTTP status: the request never completed (DNS, connection, timeout).
  // Anything else (a bug, a TypeError) must not be hidden behind a stale value.
  return e.$metadata ? "transient" : "permanent";
}

/**
 * AWS answers that will not change by asking again: the thing is not there, or we may not see it,
 * or the request is wrong. Everything else (throttling, 5xx, timeouts, network errors) is transient.
 */
/**
 * Why something could not be observed. `definitive` errors (not found, access denied) will not heal
 * by themselves and are reported at once; transient ones (throttling, 5xx, timeouts) only once they
 * have lasted longer than the alert threshold.
 */
export interface ObservationError {
  message: string;
  definitive: boolean;
}

export function observationError(error: unknown, what?: string): ObservationError {
  const e = describeError(error);
  const message = `${e.name}: ${e.message}`;
  const definitive = isNotFound(error) || isAccessDenied(error) || isInvalidRequest(error);
  return { message: what ? `${what}: ${message}` : message, definitive };
}
