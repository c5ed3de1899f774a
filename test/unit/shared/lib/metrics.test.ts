import { afterEach, describe, expect, it } from "vitest";
import { setLogSink } from "../../../../shared/lib/log";
import { createMetrics } from "../../../../shared/lib/metrics";

const lines: string[] = [];
const previous = setLogSink((l) => lines.push(l));
afterEach(() => {
  lines.length = 0;
});

describe("metrics", () => {
  it("emits embedded metric format", () => {
    createMetrics("svc").put("TokensRevoked", 2, "Count", { Region: "us-east-1" });
    const m = JSON.parse(lines[0] ?? "{}");
    expect(m._aws.CloudWatchMetrics[0]).toEqual({
      Namespace: "BuildkiteAgentTokenRotation",
      Dimensions: [["Service", "Region"]],
      Metrics: [{ Name: "TokensRevoked", Unit: "Count" }],
    });
    expect(m.TokensRevoked).toBe(2);
  });
});

process.on("exit", () => setLogSink(previous));
