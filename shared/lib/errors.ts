import { redactTokenShapes, truncate } from "./redact";

/**
 * A small error hierarchy with stable `name`s so that logs, alarms and tests can match on them.
 * No error message built here may contain a token value: messages are assembled from ids, ARNs,
 * statuses and sanitized snippets only.
 */

export class AppError extends Error {
  override name = "AppError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A setting is missing or malformed. Always names the variable. */
export class ConfigError extends AppError {
  override name = "ConfigError";
  constructor(
    readonly variable: string,
    problem: string,
  ) {
    super(`${variable}: ${problem}`);
  }
}

/** The event we were invoked with is not one we accept. Nothing was changed. */
export class InputError extends AppError {
  override name = "InputError";
}

/** The secret is not in a state in which this step may run (rotation disabled, wrong stage, ...). */
export class RotationStateError extends AppError {
  override name = "RotationStateError";
}

/** A token did not authenticate, or authenticated for the wrong organization. */
export class TokenVerificationError extends AppError {
  override name = "TokenVerificationError";
}

/** A call did not finish in time (our own deadline, not the remote's). */
export class DeadlineError extends AppError {
  override name = "DeadlineError";
}

const SNIPPET_LENGTH = 200;

/**
 * Shorten a response body for an error message and blank anything that looks like a credential,
 * so that even a misbehaving server echoing a token cannot push it into our logs. The body is cut
 * before anything else runs on it: a 300 MB body costs what a short one does.
 */
export function sanitizeSnippet(body: string): string {
  const head = body.length > SNIPPET_LENGTH * 4 ? body.slice(0, SNIPPET_LENGTH * 4) : body;
  const oneLine = head.replace(/\s+/g, " ").trim();
  // Cut at the limit before redacting would split a token so that no pattern matches its half.
  const redacted = redactTokenShapes(oneLine);
  return redacted.length > SNIPPET_LENGTH || head.length < body.length
    ? `${redacted.slice(0, SNIPPET_LENGTH)}…`
    : redacted;
}

/** Credential-shaped text blanked (Buildkite tokens, JWTs, AWS keys, random runs); see shared/lib/redact.ts. */
export function redactTokenLike(text: string): string {
  return redactTokenShapes(text, MAX_MESSAGE_CHARS);
}

/** The longest error message we pass on; a message can quote attacker-chosen input. */
export const MAX_MESSAGE_CHARS = 1_000;

export class BuildkiteApiError extends AppError {
  override name = "BuildkiteApiError";
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    readonly bodySnippet: string,
    options?: { cause?: unknown },
  ) {
    super(
      `Buildkite API ${method} ${path} failed with ${status === 0 ? "a network error" : `HTTP ${status}`}${
        bodySnippet ? `: ${bodySnippet}` : ""
      }`,
      options,
    );
  }

  /** Worth another attempt for an idempotent call. */
  get retryable(): boolean {
    return this.status === 0 || this.status === 429 || this.status >= 500;
  }
}

/** Keep only what is safe to log about an unknown thrown value. */
export function describeError(error: unknown): { name: string; message: string; code?: string } {
  if (error instanceof Error) {
    const code = (error as { Code?: unknown }).Code ?? (error as { code?: unknown }).code;
    return {
      name: truncate(String(error.name), 100),
      message: redactTokenLike(String(error.message)),
      ...(typeof code === "string" ? { code: truncate(code, 100) } : {}),
    };
  }
  let text: string;
  try {
    text = String(error);
  } catch {
    text = typeof error;
  }
  return { name: "NonError", message: redactTokenLike(text) };
}
