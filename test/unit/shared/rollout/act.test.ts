import {
  AutoScalingClient,
  CreateOrUpdateTagsCommand,
  StartInstanceRefreshCommand,
} from "@aws-sdk/client-auto-scaling";
import { PublishCommand, SNSClient } from "@aws-sdk/client-sns";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import { createLogger } from "../../../../shared/log";
import { type ActDeps, act, alertMetric } from "../../../../shared/rollout/act";
import { alertId, decodeRefreshMarker, decodeRolloutMarker } from "../../../../shared/rollout/markers";
import { MARKER_TAG, ROLLOUT_TAG } from "../../../../shared/rollout/plan";
import type { Observation, Plan } from "../../../../shared/rollout/types";

const asg = mockClient(AutoScalingClient);
const sns = mockClient(SNSClient);
const TOPIC = "arn:aws:sns:us-east-1:123456789012:alerts";
const prefs = {
  minHealthyPercentage: 75,
  maxHealthyPercentage: 150,
  instanceWarmupSeconds: 30,
  scaleInProtectedInstances: "Wait" as const,
};
let metrics: Array<[string, number]>;
let deleted: string[];
let deps: ActDeps;

const obs = (over: Partial<Observation> = {}): Observation => ({
  now: new Date("2026-11-22T12:00:00Z"),
  secret: {
    arn: "arn",
    current: "v2",
    pending: undefined,
    createdAt: { v2: new Date("2026-11-22T11:50:00Z") },
    lastRotatedAt: undefined,
  },
  replicas: [],
  targets: [
    {
      region: "us-east-1",
      groupName: "ci-a",
      exists: true,
      instances: 2,
      marker: undefined,
      refreshes: [],
      error: undefined,
    },
  ],
  tokens: [],
  alertsSent: [],
  completedVersion: undefined,
  emergency: undefined,
  ...over,
});
const planWith = (actions: Plan["actions"], over: Partial<Plan> = {}): Plan => ({
  versionId: "v2",
  targets: [],
  regionsBehind: [],
  regionsLagging: [],
  actions,
  waitingFor: [],
  notices: [],
  complete: false,
  ...over,
});

beforeEach(() => {
  asg.reset();
  sns.reset();
  metrics = [];
  deleted = [];
  deps = {
    autoScaling: () => new AutoScalingClient({ region: "us-east-1" }),
    sns: () => new SNSClient({ region: "us-east-1" }),
    buildkite: {
      deleteToken: async (id) => {
        deleted.push(id);
        return id === "gone" ? "already-gone" : "deleted";
      },
    },
    alertTopicArn: TOPIC,
    logger: createLogger("test", {}, "error"),
    metrics: { put: (name, value) => metrics.push([name, value]) },
    now: () => new Date("2026-11-22T12:00:00Z"),
  };
});

describe("act", () => {
  it("starts a refresh that replaces every instance, then tags the group with version and refresh id", async () => {
    asg.on(StartInstanceRefreshCommand).resolves({ InstanceRefreshId: "r-1" });
    const result = await act(
      planWith([
        {
          kind: "start-refresh",
          target: { region: "us-east-1", groupName: "ci-a" },
          versionId: "v2",
          preferences: prefs,
        },
      ]),
      obs(),
      deps,
    );
    expect(result.refreshesStarted).toEqual([{ region: "us-east-1", groupName: "ci-a", refreshId: "r-1" }]);
    expect(asg.commandCalls(StartInstanceRefreshCommand)[0]?.args[0].input).toEqual({
      AutoScalingGroupName: "ci-a",
      Strategy: "Rolling",
      Preferences: {
        SkipMatching: false,
        MinHealthyPercentage: 75,
        MaxHealthyPercentage: 150,
        InstanceWarmup: 30,
        ScaleInProtectedInstances: "Wait",
      },
    });
    const tag = asg.commandCalls(CreateOrUpdateTagsCommand)[0]?.args[0].input.Tags?.[0];
    expect(tag?.Key).toBe(MARKER_TAG);
    expect(decodeRefreshMarker(tag?.Value)).toEqual({ versionId: "v2", refreshId: "r-1" });
    expect(metrics).toContainEqual(["ReplicaSyncSeconds", 600]);
  });

  it("treats InstanceRefreshInProgress as someone else's refresh, not a failure", async () => {
    asg
      .on(StartInstanceRefreshCommand)
      .rejects(Object.assign(new Error("busy"), { name: "InstanceRefreshInProgressFault" }));
    const result = await act(
      planWith([
        {
          kind: "start-refresh",
          target: { region: "us-east-1", groupName: "ci-a" },
          versionId: "v2",
          preferences: prefs,
        },
      ]),
      obs(),
      deps,
    );
    expect(result.failures).toEqual([]);
    expect(asg.commandCalls(CreateOrUpdateTagsCommand)).toHaveLength(0);
  });

  it("revokes, counts 'already gone' as revoked, and records completion once", async () => {
    const result = await act(
      planWith([
        { kind: "revoke", tokenId: "t1", versionId: "v1" },
        { kind: "revoke", tokenId: "gone", versionId: "v0" },
        { kind: "record-complete", versionId: "v2" },
      ]),
      obs(),
      deps,
    );
    expect(deleted).toEqual(["t1", "gone"]);
    expect(result.revoked).toEqual(["t1", "gone"]);
    expect(metrics).toContainEqual(["TokensRevoked", 2]);
    expect(metrics).toContainEqual(["PromotionToRevocationSeconds", 600]);
    const tag = asg.commandCalls(CreateOrUpdateTagsCommand)[0]?.args[0].input.Tags?.[0];
    expect(tag?.Key).toBe(ROLLOUT_TAG);
    expect(decodeRolloutMarker(tag?.Value)).toEqual({ versionId: "v2", complete: true, alerts: [] });
  });

  it("does not record completion when a revocation failed (the next run retries)", async () => {
    deps.buildkite = {
      deleteToken: async () => {
        throw new Error("503");
      },
    };
    const result = await act(
      planWith([
        { kind: "revoke", tokenId: "t1", versionId: "v1" },
        { kind: "record-complete", versionId: "v2" },
      ]),
      obs(),
      deps,
    );
    expect(result.failures).toHaveLength(1);
    expect(asg.commandCalls(CreateOrUpdateTagsCommand)).toHaveLength(0);
  });

  it("publishes each alert and remembers it on the anchor group", async () => {
    sns.on(PublishCommand).resolves({ MessageId: "m" });
    const longSubject = `Buildkite token rollout blocked: refresh of ${"x".repeat(120)}`;
    await act(
      planWith([{ kind: "alert", key: "refresh-failed:a", subject: longSubject, message: "What: …" }]),
      obs({ alertsSent: ["old"] }),
      deps,
    );
    const input = sns.commandCalls(PublishCommand)[0]?.args[0].input;
    expect(input?.TopicArn).toBe(TOPIC);
    expect(input?.Subject?.length).toBeLessThanOrEqual(100);
    expect(input?.Subject).toMatch(/^[\x20-\x7e]+$/);
    const tag = asg.commandCalls(CreateOrUpdateTagsCommand)[0]?.args[0].input.Tags?.[0];
    expect(decodeRolloutMarker(tag?.Value)?.alerts).toEqual(["old", alertId("refresh-failed:a")]);
    expect(metrics).toContainEqual(["RolloutsBlocked", 1]);
  });

  it.each([
    ["refresh-failed:us-east-1:g:r", "RolloutsBlocked"],
    ["refresh-partial:us-east-1:g:r", "RolloutsBlocked"],
    ["replica-failed:eu-west-1", "RolloutsBlocked"],
    ["group-missing:eu-west-1:g", "RolloutsBlocked"],
    ["budget", "RolloutsSlow"],
    ["replica-slow:eu-west-1", "RolloutsSlow"],
    ["token-expiring:v2", "TokenExpiringSoon"],
  ])("counts alert %s as %s", (key, metric) => {
    expect(alertMetric(key)).toBe(metric);
  });

  it("does not remember an alert it could not publish", async () => {
    sns.on(PublishCommand).rejects(new Error("throttled"));
    const result = await act(
      planWith([{ kind: "alert", key: "budget", subject: "s", message: "m" }]),
      obs(),
      deps,
    );
    expect(result.alerted).toEqual([]);
    expect(asg.commandCalls(CreateOrUpdateTagsCommand)).toHaveLength(0);
  });
});
