import { describe, expect, it } from "vitest";
import {
  classifyAwsFailure,
  isNotFound,
  isThrottling,
  isTimeout,
  observationError,
} from "../../../../../shared/lib/aws/errors";

describe("classifyAwsFailure", () => {
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
    expect(classifyAwsFailure(error)).toBe(kind);
  });
});

describe("one reading of each error class", () => {
  const err = (fields: Record<string, unknown>) => Object.assign(new Error("m"), fields);

  it.each([
    ["ResourceNotFoundException", true],
    ["ParameterNotFound", true],
    ["ParameterVersionNotFound", true],
    ["InvalidInstanceID.NotFound", true],
    ["NotFoundException", true],
    ["AccessDeniedException", false],
    ["ValidationError", false],
  ])("not found: %s → %s", (name, expected) => {
    expect(isNotFound(err({ name }))).toBe(expected);
  });

  it("reads the code from name, code or Code", () => {
    expect(isNotFound(err({ name: "Error", code: "ResourceNotFoundException" }))).toBe(true);
    expect(isThrottling({ Code: "Throttling" })).toBe(true);
    expect(isThrottling(err({ name: "ThrottlingException" }))).toBe(true);
    expect(isThrottling(err({ name: "RequestTimeout" }))).toBe(false);
    expect(isTimeout(err({ name: "RequestTimeout" }))).toBe(true);
    expect(isNotFound("ResourceNotFoundException")).toBe(false);
    expect(isNotFound(undefined)).toBe(false);
  });

  it.each([
    ["ResourceNotFoundException", true],
    ["InvalidInstanceID.NotFound", true],
    ["AccessDenied", true],
    ["AccessDeniedException", true],
    ["UnauthorizedOperation", true],
    ["AuthorizationError", true],
    ["ValidationError", true],
    ["InvalidParameterValue", true],
    ["ThrottlingException", false],
    ["InternalFailure", false],
    ["TimeoutError", false],
  ])("an observation error %s is definitive: %s", (name, definitive) => {
    expect(observationError(err({ name }), "DescribeSecret")).toEqual({
      message: `DescribeSecret: ${name}: m`,
      definitive,
    });
  });
});
