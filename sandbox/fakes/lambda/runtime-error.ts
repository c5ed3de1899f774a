/**
 * The error document Lambda's Node.js runtime builds for a thrown value
 * (aws-lambda-nodejs-runtime-interface-client, `src/Errors.js` `toRapidResponse`): for an Error,
 * `name`, `message` and `stack` split into lines; for anything else, `typeof`, `toString()` and no
 * trace. The runtime also writes it to CloudWatch Logs, which is why the local Lambda keeps every
 * report for tests to scan.
 */

/** What the runtime reported for one failed invocation (and wrote to the function's log). */
export interface RuntimeErrorReport {
  requestId: string;
  name: string;
  errorType: string;
  errorMessage: string;
  trace: string[];
}

/** The Node.js runtime's error document for a thrown value (see the header comment). */
export function runtimeErrorReport(error: unknown): {
  errorType: string;
  errorMessage: string;
  trace: string[];
} {
  try {
    const e = error as { name?: unknown; message?: unknown; stack?: unknown };
    const isError =
      error instanceof Error ||
      (typeof e?.name === "string" &&
        typeof e.message === "string" &&
        typeof e.stack === "string" &&
        !!e.name);
    if (isError) {
      return {
        errorType: String(e.name),
        errorMessage: String(e.message),
        trace: typeof e.stack === "string" ? e.stack.split("\n") : [],
      };
    }
    return { errorType: typeof error, errorMessage: String(error), trace: [] };
  } catch {
    return {
      errorType: "handled",
      errorMessage:
        "callback called with Error argument, but there was a problem while retrieving one or more of its message, name, and stack",
      trace: [],
    };
  }
}
