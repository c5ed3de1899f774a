import { describe, expect, it } from "vitest";
import { RegionThrottle } from "../../../../../sandbox/fakes/aws/throttle";

describe("RegionThrottle", () => {
  it("is a token bucket per region that starts full and refills at its rate", () => {
    let now = 0;
    const throttle = new RegionThrottle({ ratePerSecond: 2, burst: 2 }, () => now);
    expect(throttle.tryTake("us-east-1")).toBe(true);
    expect(throttle.tryTake("us-east-1")).toBe(true);
    expect(throttle.tryTake("us-east-1")).toBe(false);
    // Another region has its own bucket.
    expect(throttle.tryTake("eu-west-1")).toBe(true);
    now = 500; // one token back at 2/s
    expect(throttle.tryTake("us-east-1")).toBe(true);
    expect(throttle.tryTake("us-east-1")).toBe(false);
    expect(throttle.throttled).toBe(2);
    expect(throttle.admitted).toBe(4);
  });

  it("never refills past the burst", () => {
    let now = 0;
    const throttle = new RegionThrottle({ ratePerSecond: 10, burst: 3 }, () => now);
    now = 60_000;
    expect(throttle.tokens("us-east-1")).toBe(3);
    const taken = Array.from({ length: 5 }, () => throttle.tryTake("us-east-1")).filter(Boolean);
    expect(taken).toHaveLength(3);
  });

  it("lets other callers in the account drain the same bucket", () => {
    let now = 0;
    // 10/s refill, other callers take 8/s: we are left with 2/s once the burst is gone.
    const throttle = new RegionThrottle(
      { ratePerSecond: 10, burst: 20, otherCallersPerSecond: 8 },
      () => now,
    );
    for (let i = 0; i < 20; i++) expect(throttle.tryTake("us-east-1")).toBe(true);
    expect(throttle.tryTake("us-east-1")).toBe(false);
    now = 1_000;
    expect(throttle.tokens("us-east-1")).toBeCloseTo(2, 6);
    expect(throttle.tryTake("us-east-1")).toBe(true);
    expect(throttle.tryTake("us-east-1")).toBe(true);
    expect(throttle.tryTake("us-east-1")).toBe(false);
    // Without our calls, a full bucket stays full: the others only take the refill's share.
    now = 100_000;
    expect(throttle.tokens("us-east-1")).toBe(20);
  });

  it("starves us when other callers take more than the refill", () => {
    let now = 0;
    const throttle = new RegionThrottle({ ratePerSecond: 5, burst: 5, otherCallersPerSecond: 6 }, () => now);
    now = 5_000; // the others emptied the bucket
    expect(throttle.tryTake("us-east-1")).toBe(false);
    now = 10_000;
    expect(throttle.tryTake("us-east-1")).toBe(false);
  });

  it("applies to the listed operations only, when listed", () => {
    expect(new RegionThrottle({ ratePerSecond: 1, burst: 1 }).applies("SendCommand")).toBe(true);
    const some = new RegionThrottle({ ratePerSecond: 1, burst: 1, operations: ["SendCommand"] });
    expect(some.applies("SendCommand")).toBe(true);
    expect(some.applies("GetParameter")).toBe(false);
  });

  it("refuses a profile that could never admit a call", () => {
    expect(() => new RegionThrottle({ ratePerSecond: 0, burst: 1 })).toThrow(/ratePerSecond/);
    expect(() => new RegionThrottle({ ratePerSecond: 1, burst: 0 })).toThrow(/burst/);
    expect(() => new RegionThrottle({ ratePerSecond: 1, burst: 1, otherCallersPerSecond: -1 })).toThrow(
      /otherCallers/,
    );
  });
});
