import { describe, expect, it } from "vitest";
import { concernsTargets, isNoOpTrigger, parseTrigger } from "../../../../functions/reconcile/trigger";

const ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:bk/agent-token-AbC123";

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
      { source: "rotate-token", secretArn: ARN, versionId: "v3" },
      { kind: "rotation", versionId: "v3" },
    ],
    [
      {
        source: "aws.ssm",
        "detail-type": "EC2 Command Invocation Status-change Notification",
        region: "us-west-2",
        detail: {
          "command-id": "e8d3c0e4-71f7-4491-898f-c9b35bee5f3b",
          "document-name": "AWS-RunShellScript",
          "instance-id": "i-0123456789abcdef0",
          "requested-date-time": "2026-11-30T21:51:30.049Z",
          status: "Success",
        },
      },
      {
        kind: "run-command",
        region: "us-west-2",
        commandId: "e8d3c0e4-71f7-4491-898f-c9b35bee5f3b",
        instanceId: "i-0123456789abcdef0",
        status: "Success",
      },
    ],
    [
      {
        source: "aws.ssm",
        "detail-type": "EC2 Command Status-change Notification",
        region: "us-west-2",
        detail: { "command-id": "c1", "document-name": "AWS-RunShellScript", status: "Failed" },
      },
      { kind: "run-command", region: "us-west-2", commandId: "c1", instanceId: undefined, status: "Failed" },
    ],
    [{ source: "manual" }, { kind: "manual", reason: undefined }],
    [
      {
        source: "reconcile",
        continuation: "0b6f3d2e-8a1c-4f5e-9b7d-2c4e6a8f0d1b",
        versionId: "v3",
        time: "2026-12-02T01:00:00.250Z",
      },
      {
        kind: "continuation",
        id: "0b6f3d2e-8a1c-4f5e-9b7d-2c4e6a8f0d1b",
        versionId: "v3",
        at: new Date("2026-12-02T01:00:00.250Z"),
      },
    ],
    [
      { source: "manual", reason: "after fixing a group" },
      { kind: "manual", reason: "after fixing a group" },
    ],
  ])("%j", (event, expected) => {
    expect(parseTrigger(event)).toEqual(expected);
  });

  const junk = "x".repeat(3 * 1024 * 1024);
  it.each([
    ["undefined", undefined],
    ["null", null],
    ["a string", "a string"],
    ["an array", [1, 2]],
    ["a number", 42],
    ["an empty object", {}],
    ["an unknown source", { source: "aws.s3", "detail-type": "Object Created", detail: {} }],
    ["a source of the wrong type", { source: 7 }],
    ["a schedule-looking event from elsewhere", { source: "evil", "detail-type": "Scheduled Event" }],
    ["aws.events without the schedule detail-type", { source: "aws.events" }],
    [
      "a refresh event whose detail is a string",
      {
        source: "aws.autoscaling",
        "detail-type": "EC2 Auto Scaling Instance Refresh Failed",
        region: "r",
        detail: "x",
      },
    ],
    [
      "a refresh event without a group",
      {
        source: "aws.autoscaling",
        "detail-type": "EC2 Auto Scaling Instance Refresh Failed",
        region: "r",
        detail: { InstanceRefreshId: "r1" },
      },
    ],
    [
      "a refresh event with a numeric refresh id",
      {
        source: "aws.autoscaling",
        "detail-type": "EC2 Auto Scaling Instance Refresh Failed",
        region: "r",
        detail: { InstanceRefreshId: 5, AutoScalingGroupName: "g" },
      },
    ],
    [
      "an unknown refresh event",
      {
        source: "aws.autoscaling",
        "detail-type": "EC2 Auto Scaling Instance Refresh Exploded",
        region: "r",
        detail: {},
      },
    ],
    [
      "a label event whose detail is an array",
      { source: "aws.secretsmanager", "detail-type": "Secret Label Updated", detail: [] },
    ],
    ["a rotation invoke without a version", { source: "rotate-token", secretArn: ARN }],
    ["a continuation without an id", { source: "reconcile", versionId: "v3" }],
    ["a continuation whose id is not a UUID", { source: "reconcile", continuation: "$(reboot)" }],
    ["a rotation invoke with a numeric version", { source: "rotate-token", secretArn: ARN, versionId: 3 }],
    [
      "a Run Command event without a command id",
      {
        source: "aws.ssm",
        "detail-type": "EC2 Command Status-change Notification",
        region: "r",
        detail: { status: "Success" },
      },
    ],
    [
      "a Run Command invocation without an instance",
      {
        source: "aws.ssm",
        "detail-type": "EC2 Command Invocation Status-change Notification",
        region: "r",
        detail: { "command-id": "c", status: "Success" },
      },
    ],
    ["a manual form with a non-string reason", { source: "manual", reason: { x: 1 } }],
    ["a 3 MB junk field", { source: "manual", reason: junk }],
    ["a 3 MB junk source", { source: junk }],
    ["too many fields", Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`k${i}`, i]))],
  ])("rejects %s with an InputError naming what is wrong, briefly", (_, event) => {
    let error: unknown;
    try {
      parseTrigger(event);
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ name: "InputError" });
    expect((error as Error).message.length).toBeLessThan(400);
  });
});

describe("parseTrigger: when the event happened", () => {
  const scheduled = (time: unknown) => ({
    source: "aws.events",
    "detail-type": "Scheduled Event",
    time,
    detail: {},
  });

  it.each([
    ["2026-12-01T21:30:00Z", Date.UTC(2026, 11, 1, 21, 30, 0)],
    ["2026-12-01T21:30:00.250Z", Date.UTC(2026, 11, 1, 21, 30, 0, 250)],
  ])("reads the envelope's time %s", (time, ms) => {
    expect(parseTrigger(scheduled(time)).at?.getTime()).toBe(ms);
  });

  it("leaves it unset when the trigger has none", () => {
    expect(parseTrigger({ source: "manual" }).at).toBeUndefined();
  });

  it.each([
    ["yesterday"],
    ["2026-12-01 21:30:00"],
    ["2026-12-01T21:30:00+01:00"],
    ["2026-13-01T21:30:00Z"],
    [42],
  ])("refuses a time that is not an ISO-8601 UTC time: %s", (time) => {
    expect(() => parseTrigger(scheduled(time))).toThrow(/time/);
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
      region: "us-east-1",
      detail: { AutoScalingGroupName: "g", InstanceRefreshId: "r" },
    });
    expect(isNoOpTrigger(trigger)).toBe(noop);
  });

  it("never skips other triggers", () => {
    for (const e of [
      { source: "manual" },
      { source: "aws.events", "detail-type": "Scheduled Event" },
      { source: "rotate-token", secretArn: ARN, versionId: "v" },
    ])
      expect(isNoOpTrigger(parseTrigger(e))).toBe(false);
  });
});

describe("concernsTargets", () => {
  const config = {
    targets: [{ region: "us-east-1", groupName: "ci-a" }],
    stacks: [{ region: "eu-west-1", stackName: "buildkite" }],
  };
  const refresh = (region: string, group: string) =>
    ({ kind: "instance-refresh", region, group, refreshId: "r", event: "Succeeded", at: undefined }) as const;

  it.each([
    ["a named target group", refresh("us-east-1", "ci-a"), true],
    ["a target stack's agent group", refresh("eu-west-1", "buildkite-AgentAutoScaleGroup-1A2B3C"), true],
    ["the same name in another region", refresh("eu-west-1", "ci-a"), false],
    ["another stack's group", refresh("eu-west-1", "buildkite-arm-AgentAutoScaleGroup-1A2B3C"), false],
    ["a group of no stack", refresh("us-east-1", "web-servers"), false],
  ])("a refresh of %s: %s", (_, trigger, expected) => {
    expect(concernsTargets(trigger, config)).toBe(expected);
  });

  it("lets every other trigger through", () => {
    expect(concernsTargets({ kind: "schedule", at: undefined }, config)).toBe(true);
  });
});
