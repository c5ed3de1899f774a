import { describe, expect, it } from "vitest";
import {
  arnInRegion,
  isAccountId,
  isRegionName,
  PARTITIONS,
  parseArn,
  parseRoleArn,
  parseSecretArn,
  parseSecretIdArn,
} from "../../../../shared/lib/arn";

const SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:buildkite/agent-token-AbC123";

describe("isRegionName", () => {
  it.each([
    ["us-east-1", true],
    ["ap-southeast-2", true],
    ["us-gov-west-1", true],
    ["cn-north-1", true],
    ["us-isob-east-1", true],
    ["eu-isoe-west-1", true],
    // Rejected by the region rule that config.ts had (two-letter prefix only).
    ["eusc-de-east-1", true],
    ["US-EAST-1", false],
    ["us-east", false],
    ["nowhere", false],
    ["us-east-1x", false],
    ["", false],
  ])("%s → %s", (name, expected) => {
    expect(isRegionName(name)).toBe(expected);
  });
});

describe("isAccountId", () => {
  it.each([
    ["123456789012", true],
    ["12345678901", false],
    ["1234-5678-9012", false],
  ])("%s → %s", (id, expected) => {
    expect(isAccountId(id)).toBe(expected);
  });
});

describe("parseArn", () => {
  it("splits the six parts; the resource keeps its colons", () => {
    expect(parseArn("arn:aws:lambda:us-east-1:123456789012:function:f:live")).toEqual({
      arn: "arn:aws:lambda:us-east-1:123456789012:function:f:live",
      partition: "aws",
      service: "lambda",
      region: "us-east-1",
      account: "123456789012",
      resource: "function:f:live",
    });
  });

  it.each(PARTITIONS.map((p) => [p]))("knows the partition %s", (partition) => {
    expect(parseArn(`arn:${partition}:sns:us-east-1:123456789012:t`)?.partition).toBe(partition);
  });
});

describe("parseSecretArn", () => {
  it("reads partition, region, account and the name without the suffix", () => {
    expect(parseSecretArn(SECRET)).toEqual({
      arn: SECRET,
      partition: "aws",
      region: "us-east-1",
      account: "123456789012",
      name: "buildkite/agent-token",
    });
    expect(parseSecretArn("arn:aws:secretsmanager:eu-west-1:123456789012:secret:a-b-c-Q1w2E3")?.name).toBe(
      "a-b-c",
    );
  });

  it.each([
    ["aws-cn", "arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:x-AbCdEf"],
    ["aws-us-gov", "arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:x-AbCdEf"],
    ["aws-iso-b", "arn:aws-iso-b:secretsmanager:us-isob-east-1:123456789012:secret:x-AbCdEf"],
  ])("accepts the %s partition", (partition, value) => {
    expect(parseSecretArn(value)?.partition).toBe(partition);
  });
});

describe("parseSecretIdArn and arnInRegion", () => {
  it("accepts a partial ARN as a secret id and moves any secret ARN to another region", () => {
    const partial = parseSecretIdArn(
      "arn:aws:secretsmanager:us-east-1:123456789012:secret:buildkite/agent-token",
    );
    expect(partial?.resource).toBe("secret:buildkite/agent-token");
    const complete = parseSecretIdArn(SECRET);
    expect(complete && arnInRegion(complete, "eu-west-1")).toBe(
      "arn:aws:secretsmanager:eu-west-1:123456789012:secret:buildkite/agent-token-AbC123",
    );
  });
});

describe("parseRoleArn", () => {
  it.each([
    ["arn:aws:iam::123456789012:role/ops", { partition: "aws", path: "/", name: "ops" }],
    [
      "arn:aws:iam::123456789012:role/ci/agent-reader",
      { partition: "aws", path: "/ci/", name: "agent-reader" },
    ],
    ["arn:aws-cn:iam::123456789012:role/a/b/c", { partition: "aws-cn", path: "/a/b/", name: "c" }],
    [
      "arn:aws-us-gov:iam::123456789012:role/r+=,.@_-",
      { partition: "aws-us-gov", path: "/", name: "r+=,.@_-" },
    ],
    // A path may hold any printable ASCII: refused by principals.ts's pattern before.
    ["arn:aws:iam::123456789012:role/team!1/r", { partition: "aws", path: "/team!1/", name: "r" }],
  ])("reads %s", (value, expected) => {
    expect(parseRoleArn(value)).toEqual({ arn: value, account: "123456789012", ...expected });
  });
});

describe("what no reader takes", () => {
  it.each([
    [
      parseArn,
      "an unknown partition (accepted by every pattern before: aws[a-z-]*)",
      "arn:awsx:sns:us-east-1:123456789012:t",
    ],
    [
      parseArn,
      "a region that is no region (accepted before: [a-z0-9-]+)",
      "arn:aws:sns:nowhere:123456789012:t",
    ],
    [parseArn, "a short account", "arn:aws:sns:us-east-1:1234:t"],
    [parseArn, "no resource", "arn:aws:sns:us-east-1:123456789012:"],
    [parseArn, "too few parts", "arn:aws:sns:us-east-1"],
    [parseArn, "not an ARN", "buildkite/agent-token"],
    // config.ts accepted any resource after `secret:`; sources.ts and cli/consumer/aws.ts likewise.
    [
      parseSecretArn,
      "a partial ARN (no six-character suffix)",
      "arn:aws:secretsmanager:us-east-1:123456789012:secret:buildkite/agent-token",
    ],
    [
      parseSecretArn,
      "a suffix of five characters",
      "arn:aws:secretsmanager:us-east-1:123456789012:secret:name-AbCdE",
    ],
    [
      parseSecretArn,
      "a name with a character Secrets Manager refuses",
      "arn:aws:secretsmanager:us-east-1:123456789012:secret:a b-AbCdEf",
    ],
    [
      parseSecretArn,
      "an unknown partition",
      "arn:aws-foo:secretsmanager:us-east-1:123456789012:secret:x-AbCdEf",
    ],
    [parseSecretArn, "another service", "arn:aws:ssm:us-east-1:123456789012:secret:x-AbCdEf"],
    [parseSecretArn, "no region", "arn:aws:secretsmanager::123456789012:secret:x-AbCdEf"],
    [parseSecretArn, "no account", "arn:aws:secretsmanager:us-east-1::secret:x-AbCdEf"],
    [parseSecretArn, "another resource type", "arn:aws:secretsmanager:us-east-1:123456789012:other:x-AbCdEf"],
    [parseSecretIdArn, "no secret after secret:", "arn:aws:secretsmanager:us-east-1:123456789012:secret:"],
    [parseSecretIdArn, "another service", "arn:aws:ssm:us-east-1:123456789012:parameter/x"],
    [parseSecretIdArn, "a name", "buildkite/agent-token"],
    // cli/credentials.ts accepted these four ([\w+=,.@/-]+ after role/).
    [parseRoleArn, "an empty name after a trailing slash", "arn:aws:iam::123456789012:role/ops/"],
    [parseRoleArn, "an empty path segment", "arn:aws:iam::123456789012:role//ops"],
    [parseRoleArn, "a name over 64 characters", `arn:aws:iam::123456789012:role/${"r".repeat(65)}`],
    [parseRoleArn, "a path over 512 characters", `arn:aws:iam::123456789012:role/${"p".repeat(511)}/r`],
    [parseRoleArn, "an unknown partition", "arn:awsx:iam::123456789012:role/ops"],
    [parseRoleArn, "a region", "arn:aws:iam:us-east-1:123456789012:role/ops"],
    [parseRoleArn, "no account", "arn:aws:iam:::role/ops"],
    [parseRoleArn, "a user", "arn:aws:iam::123456789012:user/ops"],
    [parseRoleArn, "an assumed-role session", "arn:aws:sts::123456789012:assumed-role/ops/s"],
    [parseRoleArn, "a name with a space", "arn:aws:iam::123456789012:role/o ps"],
  ])("%o refuses %s", (parse, _what, value) => {
    expect(parse(value)).toBeUndefined();
  });
});
