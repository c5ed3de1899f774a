import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { parseRequest, serveToken } from "../../../../functions/read-token/serve";
import { createLogger } from "../../../../shared/lib/log";
import { TokenReadError } from "../../../../shared/token-reader/errors";
import { parseAllowedPrincipals } from "../../../../shared/token-reader/principals";
import type { TokenValue } from "../../../../shared/token-reader/reader";
import { captureOutput } from "../../../support/capture-output";
import { assumedRole, urlEvent } from "../../../support/read-token-events";

const TOKEN = "bkct_serveunit000000000000000000000000";
const VERSION = "33333333-3333-4333-8333-333333333333";
const allowed = parseAllowedPrincipals(
  "ALLOWED_PRINCIPALS",
  "111111111111,arn:aws:iam::222222222222:role/agent-reader",
);
const value: TokenValue = {
  token: TOKEN,
  versionId: VERSION,
  region: "us-east-1",
  fetchedAt: new Date("2026-11-22T00:00:00Z"),
  source: "secretsmanager",
  stale: false,
};

const output = captureOutput();
afterAll(() => output.restore());
afterEach(() => {
  expect(output.text()).not.toContain(TOKEN);
  output.lines.length = 0;
});

function deps(read: () => Promise<TokenValue> = async () => value) {
  const reader = { read: vi.fn(read) };
  return { reader, allowed, logger: createLogger("read-token-test") };
}
const logged = () => output.lines.map((l) => JSON.parse(l) as Record<string, unknown>);

describe("serveToken", () => {
  it("serves an allowed account: token, version id and fetch time, no-store", async () => {
    const d = deps();
    const res = await serveToken(
      urlEvent({ accountId: "111111111111", userArn: "arn:aws:iam::111111111111:user/ci" }),
      d,
    );
    expect(res).toMatchObject({
      statusCode: 200,
      headers: { "content-type": "application/json", "cache-control": "no-store" },
    });
    const body = JSON.parse(typeof res === "object" ? (res.body ?? "") : "");
    expect(body).toEqual({ token: TOKEN, versionId: VERSION, fetchedAt: "2026-11-22T00:00:00.000Z" });
    const [entry] = logged();
    expect(entry).toMatchObject({
      level: "INFO",
      message: "token served",
      versionId: VERSION,
      caller: { accountId: "111111111111", userArn: "arn:aws:iam::111111111111:user/ci" },
    });
  });

  it("serves an allowed role through its assumed-role session", async () => {
    const res = await serveToken(urlEvent(assumedRole("222222222222", "agent-reader")), deps());
    expect(res).toMatchObject({ statusCode: 200 });
    expect(logged()[0]?.reason).toContain("arn:aws:iam::222222222222:role/agent-reader");
  });

  it.each([
    ["another role in the role's account", assumedRole("222222222222", "someone-else")],
    ["the role's name in another account", assumedRole("999999999999", "agent-reader")],
    ["no IAM identity at all", null],
  ])("denies %s with 403, without reading the token, and logs who asked", async (_label, iam) => {
    const d = deps();
    const res = await serveToken(urlEvent(iam), d);
    expect(res).toMatchObject({ statusCode: 403, headers: { "cache-control": "no-store" } });
    const body = typeof res === "object" ? (res.body ?? "") : "";
    expect(body).not.toContain(TOKEN);
    expect(JSON.parse(body)).toEqual({ message: expect.any(String) });
    expect(d.reader.read).not.toHaveBeenCalled();
    const [entry] = logged();
    expect(entry).toMatchObject({ level: "WARN", message: "caller denied", sourceIp: "203.0.113.7" });
    if (iam) expect(entry?.caller).toMatchObject(iam);
  });

  it.each(["POST", "PUT", "DELETE", "HEAD"])("refuses %s with 405", async (method) => {
    const d = deps();
    const res = await serveToken(urlEvent({ accountId: "111111111111" }, method), d);
    expect(res).toMatchObject({ statusCode: 405, headers: { allow: "GET" } });
    expect(d.reader.read).not.toHaveBeenCalled();
  });

  it("answers 503 on a transient read failure and 500 on a permanent one, without details", async () => {
    const failure = (kind: "transient" | "permanent") =>
      new TokenReadError("buildkite/agent-token", [
        {
          region: "us-east-1",
          kind,
          error: {
            name: kind === "transient" ? "ThrottlingException" : "AccessDeniedException",
            message: "x",
          },
        },
      ]);
    const transient = await serveToken(
      urlEvent({ accountId: "111111111111" }),
      deps(() => Promise.reject(failure("transient"))),
    );
    expect(transient).toMatchObject({ statusCode: 503, headers: { "retry-after": "5" } });
    const permanent = await serveToken(
      urlEvent({ accountId: "111111111111" }),
      deps(() => Promise.reject(failure("permanent"))),
    );
    expect(permanent).toMatchObject({ statusCode: 500 });
    expect(JSON.stringify(permanent)).not.toContain("AccessDenied");
    expect(output.text()).toContain("AccessDeniedException");
  });

  it("reads the identity from requestContext.authorizer.iam", () => {
    expect(parseRequest(urlEvent(assumedRole("222222222222", "r")))).toMatchObject({
      method: "GET",
      requestId: "req-1",
      caller: {
        accountId: "222222222222",
        userArn: "arn:aws:sts::222222222222:assumed-role/r/i-0123456789abcdef0",
      },
    });
    expect(parseRequest(undefined)).toMatchObject({ method: "", caller: undefined });
  });
});
