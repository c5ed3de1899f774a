import { describe, expect, it } from "vitest";
import { Faults, RateLimitWindow } from "../../../../../sandbox/fakes/buildkite/faults";

const MINUTE_START = Date.parse("2030-01-01T12:00:00.000Z");

describe("RateLimitWindow", () => {
  it("counts per clock-aligned minute against both budgets and resets on the next minute", () => {
    const window = new RateLimitWindow();
    const first = window.hit(MINUTE_START + 45_000);
    expect(first.headers).toMatchObject({ "RateLimit-Remaining": "199", "RateLimit-User-Remaining": "49" });
    expect(first.resetSeconds).toBe(15);
    let last = first;
    for (let i = 0; i < 50; i++) last = window.hit(MINUTE_START + 50_000);
    expect(last.exceeded).toBe(true); // 51 requests: over the user budget of 50
    expect(last.headers["RateLimit-User-Remaining"]).toBe("0");
    expect(last.headers["RateLimit-Remaining"]).toBe("149");
    const next = window.hit(MINUTE_START + 60_000);
    expect(next.exceeded).toBe(false);
    expect(next.resetSeconds).toBe(60);
  });
});

describe("Faults", () => {
  it("serves queued failures in order before flakiness, then enforcement only when on", () => {
    const faults = new Faults(false);
    faults.failNext(1, 503);
    faults.rateLimitNext(1, 7);
    const over = { headers: {}, exceeded: true, resetSeconds: 3 };
    expect(faults.injected(over)?.status).toBe(503);
    expect(faults.injected(over)).toMatchObject({ status: 429, headers: { "RateLimit-Reset": "7" } });
    expect(faults.injected(over)).toBeUndefined(); // enforcement is off
    faults.enforceRateLimits = true;
    expect(faults.injected(over)).toMatchObject({ status: 429, headers: { "RateLimit-Reset": "3" } });
    faults.reset();
    expect(faults.enforceRateLimits).toBe(false);
  });

  it("takes drops and lost creates one at a time, and refuses bad knob values", () => {
    const faults = new Faults(true);
    faults.dropNext(1);
    faults.failNextCreateAfterCommit(1);
    expect([faults.takeDrop(), faults.takeDrop()]).toEqual([true, false]);
    expect([faults.takeCreateAfterCommit(), faults.takeCreateAfterCommit()]).toEqual([true, false]);
    expect(() => faults.failNext(1, 200)).toThrow(RangeError);
    expect(() => faults.dropNext(-1)).toThrow(RangeError);
    expect(() => faults.setLatency(Number.NaN)).toThrow(RangeError);
    expect(() => faults.setFlaky({ probability: 2, seed: 1 })).toThrow(RangeError);
  });
});
