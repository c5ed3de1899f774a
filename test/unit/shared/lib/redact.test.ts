import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { looksRandom, redactTokenShapes, truncate } from "../../../../shared/lib/redact";

describe("redactTokenShapes", () => {
  it.each([
    ["Buildkite API access token", "bkua_MTA.4f6ccde8c73e26244d73c5a77c91c242c0c818ce"],
    ["Buildkite agent session token", "bkaa_MTA.Miyf6S3a3g9j8pyBGTyLC1frg9k6gDHTJdL9Fy7FXzRhrAVPckkzK6oEmdQ"],
    ["Buildkite cluster agent token", `bkct_${randomBytes(20).toString("hex")}`],
    ["Buildkite unclustered token", `bkar_${randomBytes(20).toString("hex")}`],
    [
      "a JWT",
      "eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiIwMTk2NjAxYi01YTc0LTRlOTUtYmNhOC0wNj.p-IZUkRWJOkbTuVrxa4yaWrb7b1h",
    ],
    ["a dashed base64url token", "hHBJm5Ck-IqKvmhi2SKyC-I8dSJFHvDy2X-Qw3kLp9"],
    ["a base64 blob", "r1ET/GghYdZpaNZT7JWwdWgEzoB6WgtgmlpIRmz5/Wb1PIFNPAsqvNLo"],
  ])("blanks %s", (_, token) => {
    const out = redactTokenShapes(`before ${token} after`);
    expect(out).not.toContain(token);
    expect(out).toBe("before [redacted] after");
  });

  it("blanks a labelled AWS secret access key and session token, whatever they look like", () => {
    const text = `{"SecretAccessKey":"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY","SessionToken":"IQoJb3JpZ2luX2VjEXAMPLE"} aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY`;
    const out = redactTokenShapes(text);
    expect(out).not.toContain("wJalrXUtnFEMI");
    expect(out).not.toContain("IQoJb3JpZ2lu");
    expect(out).toContain('"SecretAccessKey":"[redacted]"');
  });

  it.each([
    "ResourceNotFoundException",
    "InstanceRefreshInProgressFault",
    "arn:aws:iam::123456789012:role/buildkite-agent-token-rotation-RotateTokenFunctionRole-1A2B3C4D5E6F",
    "buildkite-agent-token-rotation-ReconcileFunctionRole-ABCDEF123456",
    "c060152e-7b5a-4505-9c07-f8eeb1a09007",
    "da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "1-5f84c7a1-2b3c4d5e6f7a8b9c0d1e2f3a",
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:buildkite/agent-token-AbC123",
    "buildkiteAgentTokenRotationRefreshMarkerV2Version7",
    "MyVeryLongCamelCaseNameForSomeThingInAws",
  ])("keeps %s", (text) => {
    expect(redactTokenShapes(`x ${text} y`)).toBe(`x ${text} y`);
  });

  it("catches nearly every random token the backup patterns are for", () => {
    let missed = 0;
    for (let i = 0; i < 500; i++) {
      const t = randomBytes(32).toString(i % 2 ? "base64" : "base64url");
      if (redactTokenShapes(t).includes(t)) missed++;
    }
    expect(missed).toBeLessThan(10);
  });

  it("truncates before matching: a 10 MiB input is fast and bounded, never a RangeError", () => {
    const big = `${"A1b2".repeat(2_621_440)}`;
    const started = Date.now();
    const out = redactTokenShapes(big);
    expect(out.length).toBeLessThan(70_000);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(looksRandom("Ab1Cd2Ef3Gh4")).toBe(true);
    expect(truncate("abcdef", 3)).toBe("abc…[3 more]");
  });
});
