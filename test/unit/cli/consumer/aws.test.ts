import { describe, expect, it } from "vitest";
import { UsageError } from "../../../../cli/args";
import { readerSettings, regionsFor } from "../../../../cli/consumer/aws";

describe("reader settings", () => {
  it("takes defaults from the environment and orders regions", () => {
    const s = readerSettings(
      { "fallback-region": ["eu-west-1,us-west-2", "us-east-1"] },
      {
        BUILDKITE_AGENT_TOKEN_SECRET_ID: "bk/token",
        AWS_REGION: "eu-central-1",
      },
    );
    expect(s).toMatchObject({
      secretId: "bk/token",
      source: "secretsmanager",
      versionStage: "AWSCURRENT",
      regions: ["eu-central-1", "eu-west-1", "us-west-2", "us-east-1"],
      assumeRole: undefined,
    });
  });

  it("adds an ARN's own region last, and needs some region", () => {
    const s = readerSettings({ region: "eu-west-1" }, {});
    expect(regionsFor(s, "arn:aws:secretsmanager:us-east-1:123456789012:secret:x-AbCdEf")).toEqual([
      "eu-west-1",
      "us-east-1",
    ]);
    expect(() => regionsFor(readerSettings({}, {}), "plain-name")).toThrow(UsageError);
  });

  it.each([
    [{ source: "vault" }, /--source/],
    [{ region: "moon-1" }, /region/],
    [{ "assume-role": "arn:aws:iam::123:user/x" }, /--assume-role/],
    // IAM role names are 1 to 64 of [\w+=,.@-]; a path is `/` or `/…/` (CreateRole).
    [{ "assume-role": "arn:aws:iam::123456789012:role/ops/" }, /--assume-role/],
    [{ "assume-role": "arn:aws:iam::123456789012:role//ops" }, /--assume-role/],
    [{ "assume-role": "arn:awsx:iam::123456789012:role/ops" }, /--assume-role/],
    [{ "assume-role": "arn:aws:iam::123456789012:role/r", "role-session-name": "a b" }, /session/],
    [{ "version-stage": "bad stage" }, /--version-stage/],
  ])("refuses %o", (values, message) => {
    expect(() => readerSettings(values, {})).toThrow(message);
  });
});
