import { describe, expect, it } from "vitest";
import { growthExponent } from "../../../../scripts/bench/growth";

describe("growthExponent: b of calls ≈ a·G^b", () => {
  it("finds the exponent of an exact power law", () => {
    const sizes = [12, 64, 256, 1000];
    expect(growthExponent(sizes.map((g) => ({ g, calls: 7 * g })))).toBeCloseTo(1, 10);
    expect(growthExponent(sizes.map((g) => ({ g, calls: 3 * g * g })))).toBeCloseTo(2, 10);
    expect(growthExponent(sizes.map((g) => ({ g, calls: 500 })))).toBeCloseTo(0, 10);
  });

  it("ignores G = 1 and empty counts, and needs two sizes to fit", () => {
    expect(
      growthExponent([
        { g: 1, calls: 99 },
        { g: 10, calls: 10 },
        { g: 100, calls: 100 },
      ]),
    ).toBeCloseTo(1, 10);
    expect(
      growthExponent([
        { g: 10, calls: 10 },
        { g: 100, calls: 0 },
      ]),
    ).toBeNaN();
  });
});
