import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

/**
 * The statement an organization applies (as an SCP, or inside a permissions boundary) so that
 * read-token can only be reached through its function URL, where Lambda fills
 * requestContext.authorizer.iam from the verified SigV4 signature. A direct Invoke carries a
 * requestContext the caller wrote. README "read-token's trust boundary" documents it.
 */
const root = new URL("../../../..", import.meta.url).pathname;
const policy = JSON.parse(
  readFileSync(`${root}/infra/policies/deny-direct-read-token-invoke.json`, "utf8"),
) as {
  Version: string;
  Statement: Array<{
    Effect: string;
    Action: string | string[];
    Resource: string | string[];
    Condition?: Record<string, Record<string, string>>;
  }>;
};

describe("deny-direct-read-token-invoke.json", () => {
  it("is one Deny of lambda:InvokeFunction on the function (and its qualifiers) unless via the function URL", () => {
    expect(policy.Version).toBe("2012-10-17");
    expect(policy.Statement).toHaveLength(1);
    const [statement] = policy.Statement;
    expect(statement?.Effect).toBe("Deny");
    expect([statement?.Action].flat()).toEqual(["lambda:InvokeFunction"]);
    const resources = [statement?.Resource].flat() as string[];
    expect(resources.length).toBe(2);
    for (const r of resources)
      expect(r).toMatch(/^arn:aws:lambda:\*:\d{12}:function:READ_TOKEN_FUNCTION_NAME(:\*)?$/);
    // BoolIfExists: the key is absent on a direct Invoke, so the Deny applies; via the URL it is
    // "true" and the Deny does not (https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html).
    expect(statement?.Condition).toEqual({ BoolIfExists: { "lambda:InvokedViaFunctionUrl": "false" } });
  });

  it("evaluates as intended for the three kinds of request", () => {
    const condition = policy.Statement[0]?.Condition?.BoolIfExists ?? {};
    const denies = (context: Record<string, string>) =>
      Object.entries(condition).every(([key, value]) => !(key in context) || context[key] === value);
    expect(denies({})).toBe(true); // direct Invoke: no such key
    expect(denies({ "lambda:InvokedViaFunctionUrl": "false" })).toBe(true);
    expect(denies({ "lambda:InvokedViaFunctionUrl": "true" })).toBe(false); // through the URL
  });
});
