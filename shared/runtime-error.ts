/**
 * What a function hands back to the Lambda runtime when it fails. The runtime serialises the
 * thrown error (errorType, errorMessage, stack trace) into the invocation result, the
 * asynchronous-invocation destination and CloudWatch Logs, so nothing in it may carry a token:
 * the copy keeps the error's name, redacts its message and stack, and drops `cause` (which the
 * runtime does not redact and which may hold a raw SDK or HTTP error).
 */
export function sanitizeForRuntime(error: unknown, redact: (text: string) => string): Error {
  const original = error instanceof Error ? error : undefined;
  const message = redact(original ? original.message : String(error));
  const copy = new Error(message);
  copy.name = original?.name ?? "Error";
  const stack = original?.stack;
  copy.stack = stack ? redact(stack) : `${copy.name}: ${message}`;
  return copy;
}
