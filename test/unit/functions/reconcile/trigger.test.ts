import { describe, expect, it } from "vitest";
import { isNoOpTrigger, parseTrigger } from "../../../../functions/reconcile/trigger";

describe("parseTrigger", () => {
  it.each([
    [
      {
        source: "aws.secretsmanager",
        "detail-type": "Secret Label Updated",
        detail: { name: "bk", labelUpdated: "AWSCURRENT", versionId: "v9" },
      },
      { kind: "secret-label-updated", versionId: "v9" },
    ],
    [
      {
        source: "aws.autoscaling",
        "detail-type": "EC2 Auto Scaling Instance Refresh Succeeded",
        region: "eu-west-1",
        detail: { InstanceRefreshId: "r1", AutoScalingGroupName: "ci" },
      },
      { kind: "instance-refresh", region: "eu-west-1", group: "ci", refreshId: "r1", event: "Succeeded" },
    ],
    [{ source: "aws.events", "detail-type": "Scheduled Event", detail: {} }, { kind: "schedule" }],
    [
      { source: "rotate-token", versionId: "v3" },
      { kind: "rotation", versionId: "v3" },
    ],
    [{}, { kind: "manual" }],
    [undefined, { kind: "manual" }],
  ])("%j", (event, expected) => {
    expect(parseTrigger(event)).toEqual(expected);
  });

  it.each([["a string"], [[1, 2]], [42]])("rejects %j", (event) => {
    expect(() => parseTrigger(event)).toThrow(/object event/);
  });
});

describe("isNoOpTrigger", () => {
  it.each([
    ["Started", true],
    ["Rollback Started", true],
    ["Succeeded", false],
    ["Failed", false],
    ["Cancelled", false],
    ["Rollback Succeeded", false],
  ])("refresh %s → no-op %s", (event, noop) => {
    const trigger = parseTrigger({
      source: "aws.autoscaling",
      "detail-type": `EC2 Auto Scaling Instance Refresh ${event}`,
      detail: { AutoScalingGroupName: "g", InstanceRefreshId: "r" },
    });
    expect(isNoOpTrigger(trigger)).toBe(noop);
  });

  it("never skips other triggers", () => {
    for (const e of [{}, { source: "aws.events" }, { source: "rotate-token" }])
      expect(isNoOpTrigger(parseTrigger(e))).toBe(false);
  });
});
