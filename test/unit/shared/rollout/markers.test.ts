import { describe, expect, it } from "vitest";
import { alertId, decodeRolloutMarker, encodeRolloutMarker } from "../../../../shared/rollout/markers";

/** Auto Scaling tag values are at most 256 characters (API reference: Tag, Value). */
const TAG_VALUE_MAX = 256;

describe("rollout marker", () => {
  const longest = {
    versionId: "v".repeat(64),
    complete: true,
    alerts: Array.from({ length: 40 }, (_, i) => alertId(`alert-${i}`)),
    unobservableSince: new Date(99_999_999_999_999),
    observedAt: new Date(99_999_999_999_999),
  };

  it("fits a tag value with the longest version id, every field set and many alerts", () => {
    expect(encodeRolloutMarker(longest).length).toBeLessThanOrEqual(TAG_VALUE_MAX);
  });

  it("keeps the newest alerts when they do not all fit", () => {
    const decoded = decodeRolloutMarker(encodeRolloutMarker(longest));
    expect(decoded?.alerts.at(-1)).toBe(longest.alerts.at(-1));
    expect(decoded?.alerts.length).toBeGreaterThan(0);
  });

  it("round-trips the start of the last full observation", () => {
    const m = { ...longest, alerts: [], observedAt: new Date(1_764_000_000_123) };
    expect(decodeRolloutMarker(encodeRolloutMarker(m))).toEqual(m);
  });

  it("reads a tag written before observation times were recorded", () => {
    const decoded = decodeRolloutMarker("version=v1 complete=0 alerts= unobserved=-");
    expect(decoded).toEqual({
      versionId: "v1",
      complete: false,
      alerts: [],
      unobservableSince: undefined,
      observedAt: undefined,
    });
  });

  it.each([
    ["a time that is not epoch ms", "version=v1 complete=0 alerts= unobserved=- observed=yesterday"],
    ["a trailing field", "version=v1 complete=0 alerts= unobserved=- observed=1764000000123 x=1"],
  ])("refuses %s", (_, value) => {
    expect(decodeRolloutMarker(value)).toBeUndefined();
  });
});
