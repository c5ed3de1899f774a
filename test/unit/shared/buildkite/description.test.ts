import { describe, expect, it } from "vitest";
import {
  describeManagedToken,
  isManagedFor,
  parseManagedTokenDescription,
} from "../../../../shared/buildkite/description";

const ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:buildkite/agent-token-AbC123";

describe("managed token description", () => {
  it("round-trips the secret ARN and version id", () => {
    const d = describeManagedToken(ARN, "c060152e-7b5a-4505-9c07-f8eeb1a09007");
    expect(d).toBe(
      `buildkite-agent-token-rotation secret=${ARN} version=c060152e-7b5a-4505-9c07-f8eeb1a09007`,
    );
    expect(parseManagedTokenDescription(d)).toEqual({
      secretArn: ARN,
      versionId: "c060152e-7b5a-4505-9c07-f8eeb1a09007",
    });
    expect(isManagedFor(d, ARN)).toBe(true);
  });

  it.each([
    ["a human's token", "Windows agents"],
    ["another secret", describeManagedToken(ARN.replace("AbC123", "Other1"), "v1")],
    ["a lookalike with trailing text", `${describeManagedToken(ARN, "v1")} (copy)`],
    ["no version", `buildkite-agent-token-rotation secret=${ARN}`],
  ])("does not claim %s", (_, description) => {
    expect(isManagedFor(description, ARN)).toBe(false);
  });
});
