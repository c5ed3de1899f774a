import { describe, expect, it } from "vitest";
import { runtimeErrorReport } from "../../../../sandbox/fakes/lambda/local-lambda";
import { sanitizeForRuntime } from "../../../../shared/lib/runtime-error";

const TOKEN = "bkct_0123456789abcdef0123456789abcdef01234567";
const redact = (text: string) => text.split(TOKEN).join("[REDACTED]");

/** An SDK-style error that echoes the request body, with a cause chain carrying it too. */
function echoingError(): Error {
  const cause = new Error(`inner ${TOKEN}`);
  const error = new Error(`ValidationException: bad request {"SecretString":"${TOKEN}"}`, { cause });
  error.name = "ValidationException";
  Object.assign(error, { $response: { body: TOKEN }, SecretString: TOKEN });
  return error;
}

describe("sanitizeForRuntime", () => {
  it("keeps the name, redacts message and stack, drops the cause and every other property", () => {
    const safe = sanitizeForRuntime(echoingError(), redact);
    expect(safe).toBeInstanceOf(Error);
    expect(safe.name).toBe("ValidationException");
    expect(safe.message).toBe('ValidationException: bad request {"SecretString":"[REDACTED]"}');
    expect(safe.stack?.split("\n")[0]).toBe(`ValidationException: ${safe.message}`);
    expect(
      safe.stack
        ?.split("\n")
        .slice(1)
        .every((l) => /^\s+at /.test(l)),
    ).toBe(true);
    expect(safe.cause).toBeUndefined();
    expect(Object.keys(safe)).toEqual([]);
    const report = runtimeErrorReport(safe);
    expect(JSON.stringify(report)).not.toContain(TOKEN);
    expect(report.errorType).toBe("ValidationException");
  });

  it("redacts a token that appears only in the raw stack's frames", () => {
    const error = new Error("plain");
    error.stack = `Error: plain\n    at handler (/var/task/${TOKEN}.js:1:1)`;
    expect(sanitizeForRuntime(error, redact).stack).not.toContain(TOKEN);
  });

  it("bounds a multi-megabyte message before redacting it", () => {
    let seen = 0;
    const safe = sanitizeForRuntime(new Error("x".repeat(10 * 1024 * 1024)), (t) => {
      seen = Math.max(seen, t.length);
      return t;
    });
    expect(seen).toBeLessThan(10_000);
    expect(safe.message.length).toBeLessThanOrEqual(1_001);
    expect((safe.stack ?? "").length).toBeLessThan(20_000);
  });

  it.each([
    ["a string", `boom ${TOKEN}`, "Error"],
    ["undefined", undefined, "Error"],
    ["an object", { toString: () => `obj ${TOKEN}` }, "Error"],
    [
      "a throwing toString",
      {
        toString: () => {
          throw new Error("no");
        },
      },
      "Error",
    ],
  ])("turns %s into a plain redacted Error", (_, value, name) => {
    const safe = sanitizeForRuntime(value, redact);
    expect(safe.name).toBe(name);
    expect(safe.message).not.toContain(TOKEN);
    expect(safe.stack ?? "").not.toContain(TOKEN);
  });
});
