import { afterEach, describe, expect, it } from "vitest";
import { createLogger, registerSecret, setLogSink } from "../../../../shared/lib/log";

const lines: string[] = [];
const previous = setLogSink((l) => lines.push(l));
afterEach(() => {
  lines.length = 0;
});

describe("logger", () => {
  it("writes one JSON object per line with service and fields", () => {
    createLogger("svc").child({ versionId: "v1" }).info("hello", { n: 1 });
    const entry = JSON.parse(lines[0] ?? "{}");
    expect(entry).toMatchObject({ level: "INFO", service: "svc", message: "hello", versionId: "v1", n: 1 });
  });

  it("never prints a registered secret, wherever it appears", () => {
    const secret = "bkct_0123456789abcdef0123456789abcdef01234567";
    registerSecret(secret);
    createLogger("svc").warn(`message with ${secret}`, { nested: { note: `x${secret}y` }, list: [secret] });
    expect(lines.join("\n")).not.toContain(secret);
    expect(lines.join("\n")).toContain("[REDACTED]");
  });

  it("never prints fields named like credentials", () => {
    createLogger("svc").info("m", { token: "abc", Authorization: "Bearer x", value: "v", ok: "shown" });
    const entry = JSON.parse(lines[0] ?? "{}");
    expect(entry).toMatchObject({
      token: "[REDACTED]",
      Authorization: "[REDACTED]",
      value: "[REDACTED]",
      ok: "shown",
    });
  });

  it("matches credential-like field names by substring, keeping references to them", () => {
    createLogger("svc").info("m", {
      agentToken: "a",
      BUILDKITE_AGENT_TOKEN: "b",
      body: "c",
      requestBody: "d",
      "x-api-key": "e",
      apiTokenSecret: { nested: "f" },
      tokenId: "tok-1",
      secretArn: "arn:aws:secretsmanager:us-east-1:1:secret:x",
      leakedTokenIds: ["t1"],
      ClientRequestToken: "22222222-2222-4222-8222-222222222222",
      tokenExpirySeconds: 3600,
      tokens: 3,
    });
    const entry = JSON.parse(lines[0] ?? "{}");
    for (const k of [
      "agentToken",
      "BUILDKITE_AGENT_TOKEN",
      "body",
      "requestBody",
      "x-api-key",
      "apiTokenSecret",
    ]) {
      expect(entry[k]).toBe("[REDACTED]");
    }
    expect(entry).toMatchObject({
      tokenId: "tok-1",
      secretArn: "arn:aws:secretsmanager:us-east-1:1:secret:x",
      leakedTokenIds: ["t1"],
      ClientRequestToken: "22222222-2222-4222-8222-222222222222",
      tokenExpirySeconds: 3600,
      tokens: 3,
    });
  });

  it("keeps AWS error names, role names and request ids; blanks token shapes nobody registered", () => {
    const unregistered = "bkua_MTA.4f6ccde8c73e26244d73c5a77c91c242c0c818ce";
    createLogger("svc").error("ResourceNotFoundException: role RotateTokenFunctionRole-1A2B3C4D5E6F", {
      requestId: "c060152e-7b5a-4505-9c07-f8eeb1a09007",
      error: { name: "InstanceRefreshInProgressFault", message: `echo ${unregistered}` },
    });
    const text = lines.join("\n");
    expect(text).toContain("ResourceNotFoundException");
    expect(text).toContain("RotateTokenFunctionRole-1A2B3C4D5E6F");
    expect(text).toContain("c060152e-7b5a-4505-9c07-f8eeb1a09007");
    expect(text).toContain("InstanceRefreshInProgressFault");
    expect(text).not.toContain(unregistered);
  });

  it("bounds multi-megabyte fields and errors instead of throwing", () => {
    const huge = "x".repeat(10 * 1024 * 1024);
    const secret = "bkct_straddling_0123456789abcdef0123456789";
    registerSecret(secret);
    expect(() =>
      createLogger("svc").error(huge, {
        secretId: huge,
        error: new Error(huge),
        list: new Array(10_000).fill("a"),
      }),
    ).not.toThrow();
    expect((lines[0] ?? "").length).toBeLessThan(20_000);
    expect(JSON.parse(lines[0] ?? "{}").list).toHaveLength(101);
  });

  it("respects the level", () => {
    createLogger("svc", {}, "warn").info("hidden");
    expect(lines).toHaveLength(0);
  });
});

process.on("exit", () => setLogSink(previous));
