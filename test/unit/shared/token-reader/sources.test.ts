import { describe, expect, it } from "vitest";
import { aggregateKind, classifyFailure, type RegionFailure } from "../../../../shared/token-reader/errors";
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

describe("failure classification", () => {
  const err = (fields: Record<string, unknown>) => Object.assign(new Error("m"), fields);
  it.each([
    [err({ name: "ResourceNotFoundException", $metadata: { httpStatusCode: 400 } }), "not-found"],
    [err({ name: "ParameterNotFound", $metadata: { httpStatusCode: 400 } }), "not-found"],
    [err({ name: "ThrottlingException", $metadata: { httpStatusCode: 400 } }), "transient"],
    [err({ name: "InternalServiceError", $metadata: { httpStatusCode: 500 } }), "transient"],
    [err({ name: "Whatever", $metadata: { httpStatusCode: 503 } }), "transient"],
    [err({ name: "Whatever", $metadata: { httpStatusCode: 429 } }), "transient"],
    [err({ name: "Error", code: "ECONNRESET", $metadata: { attempts: 3 } }), "transient"],
    [err({ name: "TimeoutError" }), "transient"],
    [err({ name: "AccessDeniedException", $metadata: { httpStatusCode: 400 } }), "permanent"],
    [err({ name: "DecryptionFailure", $metadata: { httpStatusCode: 400 } }), "permanent"],
    [err({ name: "InvalidRequestException", $metadata: { httpStatusCode: 400 } }), "permanent"],
    [err({ name: "CredentialsProviderError", $metadata: {} }), "permanent"],
    [new TypeError("bug"), "permanent"],
    ["a string", "permanent"],
  ])("%s → %s", (error, kind) => {
    expect(classifyFailure(error)).toBe(kind);
  });

  const f = (kind: RegionFailure["kind"]): RegionFailure => ({
    region: "r",
    kind,
    error: { name: "E", message: "" },
  });
  it("aggregates regions: any permanent wins, all not-found is not-found, else transient", () => {
    expect(aggregateKind([f("not-found"), f("transient")])).toBe("transient");
    expect(aggregateKind([f("permanent"), f("transient")])).toBe("permanent");
    expect(aggregateKind([f("not-found"), f("not-found")])).toBe("not-found");
    expect(aggregateKind([])).toBe("permanent");
  });
});
