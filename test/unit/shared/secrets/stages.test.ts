import { describe, expect, it } from "vitest";
import { versionHolding } from "../../../../shared/secrets/stages";

describe("versionHolding", () => {
  const stages = { a: ["AWSPREVIOUS"], b: ["AWSCURRENT", "AWSPENDING"], c: [] };

  it.each([
    ["AWSCURRENT", "b"],
    ["AWSPENDING", "b"],
    ["AWSPREVIOUS", "a"],
    ["CUSTOM", undefined],
  ])("%s is on %s", (label, expected) => {
    expect(versionHolding(stages, label)).toBe(expected);
  });

  it("finds nothing in no versions", () => {
    expect(versionHolding({}, "AWSCURRENT")).toBeUndefined();
  });
});
