import { describe, expect, it } from "vitest";
import { aggregateKind, type RegionFailure } from "../../../../shared/token-reader/errors";

describe("aggregateKind", () => {
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
