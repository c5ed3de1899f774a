import { describe, expect, it } from "vitest";
import {
  referenceParameterName,
  secretIdForRegion,
  secretName,
  versionIdFromSourceResult,
} from "../../../../shared/token-reader/sources";

const ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:buildkite/agent-token-AbCdEf";

describe("secret ids per region", () => {
  it("rewrites an ARN to the region and keeps a name as is", () => {
    expect(secretIdForRegion(ARN, "eu-west-1")).toBe(
      "arn:aws:secretsmanager:eu-west-1:123456789012:secret:buildkite/agent-token-AbCdEf",
    );
    expect(secretIdForRegion("buildkite/agent-token", "eu-west-1")).toBe("buildkite/agent-token");
    // Not an ARN (no such partition): passed on as given, like any other id.
    const foreign = ARN.replace("arn:aws:", "arn:awsx:");
    expect(secretIdForRegion(foreign, "eu-west-1")).toBe(foreign);
    expect(secretIdForRegion(ARN.replace("arn:aws:", "arn:aws-cn:"), "cn-north-1")).toContain(
      "arn:aws-cn:secretsmanager:cn-north-1:",
    );
  });

  it("reduces an ARN to the secret's name", () => {
    expect(secretName(ARN)).toBe("buildkite/agent-token");
    expect(secretName("plain-name")).toBe("plain-name");
  });

  it("builds the Parameter Store reference, with a selector only for stages other than AWSCURRENT", () => {
    expect(referenceParameterName(ARN, "AWSCURRENT")).toBe(
      "/aws/reference/secretsmanager/buildkite/agent-token",
    );
    expect(referenceParameterName("x", "AWSPENDING")).toBe("/aws/reference/secretsmanager/x:AWSPENDING");
  });

  it("takes the version id from SourceResult in either shape, and nothing from junk", () => {
    expect(versionIdFromSourceResult(JSON.stringify({ VersionId: "v9" }), "AWSCURRENT")).toBe("v9");
    expect(
      versionIdFromSourceResult(
        JSON.stringify({ VersionIdsToStages: { a: ["AWSPREVIOUS"], b: ["AWSCURRENT", "AWSPENDING"] } }),
        "AWSPENDING",
      ),
    ).toBe("b");
    expect(versionIdFromSourceResult("not json", "AWSCURRENT")).toBeUndefined();
    expect(versionIdFromSourceResult(undefined, "AWSCURRENT")).toBeUndefined();
  });
});
