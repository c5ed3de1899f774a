import { describe, expect, it } from "vitest";
import {
  anyRuleMatches,
  matchesPattern,
  reconcileRulePatterns,
  SCHEDULE_PATTERN,
} from "../../../../../sandbox/fakes/eventbridge/rules";

const SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:agent-token-AbCdEf";
const { promoted, refreshes } = reconcileRulePatterns(SECRET);
const refresh = (kind: string, source = "aws.autoscaling") => ({
  source,
  "detail-type": `EC2 Auto Scaling Instance Refresh ${kind}`,
  detail: { AutoScalingGroupName: "ci-1" },
});
const label = (labelUpdated: string, resources: unknown = [SECRET]) => ({
  source: "aws.secretsmanager",
  "detail-type": "Secret Label Updated",
  resources,
  detail: { labelUpdated, versionId: "v" },
});

describe("EventBridge pattern matching (exact values)", () => {
  it.each([
    ["a terminal refresh event", refreshes, refresh("Succeeded"), true],
    ["a rollback that failed", refreshes, refresh("Rollback Failed"), true],
    ["a refresh start", refreshes, refresh("Started"), false],
    ["a checkpoint", refreshes, refresh("Checkpoint Reached"), false],
    ["another source", refreshes, refresh("Succeeded", "custom.autoscaling"), false],
    ["AWSCURRENT on our secret", promoted, label("AWSCURRENT"), true],
    ["a custom label", promoted, label("blue"), false],
    ["another secret", promoted, label("AWSCURRENT", [`${SECRET}x`]), false],
    ["our secret among other resources", promoted, label("AWSCURRENT", ["other", SECRET]), true],
    ["no resources field", promoted, { ...label("AWSCURRENT"), resources: undefined }, false],
    ["no detail", promoted, { ...label("AWSCURRENT"), detail: undefined }, false],
    ["a non-string value", promoted, label("AWSCURRENT", [42]), false],
    ["not an object", refreshes, "EC2 Auto Scaling Instance Refresh Succeeded", false],
    ["an array", refreshes, [refresh("Succeeded")], false],
  ] as const)("%s", (_name, pattern, event, fires) => {
    expect(matchesPattern(pattern, event)).toBe(fires);
  });

  it("a schedule event matches the schedule rule only", () => {
    const scheduled = { source: "aws.events", "detail-type": "Scheduled Event", detail: {} };
    expect(anyRuleMatches([SCHEDULE_PATTERN], scheduled)).toBe(true);
    expect(anyRuleMatches([promoted, refreshes], scheduled)).toBe(false);
    expect(anyRuleMatches([], scheduled)).toBe(false);
  });
});
