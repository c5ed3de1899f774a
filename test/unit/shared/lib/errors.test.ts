import { describe, expect, it } from "vitest";
import {
  BuildkiteApiError,
  describeError,
  redactTokenLike,
  sanitizeSnippet,
} from "../../../../shared/lib/errors";

describe("errors", () => {
  it("redacts token-like runs but keeps UUIDs and AWS error names", () => {
    const uuid = "c060152e-7b5a-4505-9c07-f8eeb1a09007";
    expect(redactTokenLike(`token bkct_abcdefghijklmnopqrstuvwxyz012345 id ${uuid}`)).toBe(
      `token [redacted] id ${uuid}`,
    );
    expect(redactTokenLike("ResourceNotFoundException")).toBe("ResourceNotFoundException");
  });

  it("sanitizes a 300 MB body without throwing, cutting it first", () => {
    const body = `bkct_${"a".repeat(40)} ${"y".repeat(300 * 1024 * 1024)}`;
    const snippet = sanitizeSnippet(body);
    expect(snippet.length).toBeLessThanOrEqual(201);
    expect(snippet).not.toContain("bkct_");
  });

  it("keeps status and a short, sanitized snippet", () => {
    const body = `{"message":"oops","echo":"bkct_abcdefghijklmnopqrstuvwxyz012345"}${"x ".repeat(300)}`;
    const e = new BuildkiteApiError("GET", "/v2/x", 503, sanitizeSnippet(body));
    expect(e.status).toBe(503);
    expect(e.message).toContain("HTTP 503");
    expect(e.message).not.toContain("bkct_");
    expect(e.bodySnippet.length).toBeLessThanOrEqual(201);
    expect(e.retryable).toBe(true);
    expect(new BuildkiteApiError("GET", "/v2/x", 422, "").retryable).toBe(false);
  });

  it("describes unknown errors safely", () => {
    expect(
      describeError(Object.assign(new Error("boom"), { name: "ThrottlingException", Code: "Throttling" })),
    ).toEqual({
      name: "ThrottlingException",
      message: "boom",
      code: "Throttling",
    });
    expect(describeError("plain")).toEqual({ name: "NonError", message: "plain" });
  });
});
