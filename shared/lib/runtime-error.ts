/**
 * What a handler may throw to the Lambda runtime. The Node.js runtime reports an uncaught error
 * as `{ errorType, errorMessage, trace }`: it writes that report to CloudWatch Logs and returns it
 * to a synchronous caller (https://docs.aws.amazon.com/lambda/latest/dg/nodejs-exceptions.html).
 * `errorType` is the error's `name`, `errorMessage` its `message`, `trace` its `stack` split into
 * lines, and the stack's first line repeats the message. An SDK error that echoes a request body,
 * or a message quoting attacker-chosen input, would put both in front of whoever reads the logs or
 * called the function. So every handler rethrows this instead of the raw error: same `name`, a
 * redacted and bounded message, a stack rebuilt from that message (frames redacted too), and no
 * `cause` chain (nor any other own property) for the runtime to serialise.
 */

/** Longest message passed to the runtime. */
const MAX_MESSAGE = 1_000;
const MAX_NAME = 100;
const MAX_FRAMES = 30;
const MAX_FRAME = 300;

function cut(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

export function sanitizeForRuntime(error: unknown, redact: (text: string) => string): Error {
  const isError = error instanceof Error;
  let name = "Error";
  let message: string;
  let frames: string[] = [];
  try {
    if (isError) {
      name = typeof error.name === "string" && error.name ? error.name : "Error";
      message = typeof error.message === "string" ? error.message : String(error.message);
      const stack = typeof error.stack === "string" ? error.stack : "";
      // Frames only: every line before the first "    at " repeats (part of) the message.
      frames = stack
        .split("\n", 1_000)
        .filter((line) => /^\s+at /.test(line))
        .slice(0, MAX_FRAMES);
    } else {
      message = String(error);
    }
  } catch {
    message = "unprintable error";
  }
  // Cut before redacting: redaction must never see unbounded text; cut again after, as the
  // redaction markers may lengthen it.
  const safeName = cut(redact(cut(name, MAX_NAME * 4)), MAX_NAME).replace(/\s+/g, " ");
  const safeMessage = cut(redact(cut(message, MAX_MESSAGE * 4)), MAX_MESSAGE);
  const sanitized = new Error(safeMessage);
  // `name` as an own property, so the runtime's errorType is the original type's name.
  Object.defineProperty(sanitized, "name", {
    value: safeName,
    enumerable: false,
    writable: true,
    configurable: true,
  });
  const firstLine = safeMessage ? `${safeName}: ${safeMessage}` : safeName;
  const safeFrames = frames.map((frame) => cut(redact(cut(frame, MAX_FRAME * 4)), MAX_FRAME));
  Object.defineProperty(sanitized, "stack", {
    value: [firstLine, ...safeFrames].join("\n"),
    enumerable: false,
    writable: true,
    configurable: true,
  });
  return sanitized;
}
