import {
  AutoScalingClient,
  CreateOrUpdateTagsCommand,
  StartInstanceRefreshCommand,
  TerminateInstanceInAutoScalingGroupCommand,
} from "@aws-sdk/client-auto-scaling";
import { PublishCommand, SNSClient } from "@aws-sdk/client-sns";
import { SendCommandCommand, SSMClient } from "@aws-sdk/client-ssm";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import { createLogger } from "../../../../shared/lib/log";
import { type ActDeps, act, alertMetric, recordRefreshIds } from "../../../../shared/rollout/act";
import {
  alertId,
  decodeRefreshMarker,
  decodeRolloutMarker,
  decodeSync,
  MARKER_TAG,
  ROLLOUT_TAG,
  SYNC_TAG,
} from "../../../../shared/rollout/markers";
import type { Action, Observation, Plan } from "../../../../shared/rollout/types";
import { emptyPlan, observation, target } from "../../../support/rollout-fixtures";

const asg = mockClient(AutoScalingClient);
const ssm = mockClient(SSMClient);
const sns = mockClient(SNSClient);
const TOPIC = "arn:aws:sns:us-east-1:123456789012:alerts";
const NOW = new Date("2026-11-22T12:00:00Z");
const prefs = {
  minHealthyPercentage: 75,
  maxHealthyPercentage: 150,
  instanceWarmupSeconds: 30,
  scaleInProtectedInstances: "Refresh" as const,
};
const group = { region: "us-east-1", groupName: "ci-a" };
let metrics: Array<[string, number]>;
let deleted: string[];
let stopped: string[];
let deps: ActDeps;

const obs = (over: Partial<Observation> = {}): Observation =>
  observation(
    { targets: [target("us-east-1", "ci-a")], replicas: [], ...over },
    { current: "v2", createdAt: { v2: new Date("2026-11-22T11:50:00Z") } },
  );
const planWith = (actions: Action[], over: Partial<Plan> = {}): Plan => emptyPlan({ actions, ...over });
const tags = () => asg.commandCalls(CreateOrUpdateTagsCommand).map((c) => c.args[0].input.Tags?.[0]);

beforeEach(() => {
  asg.reset();
  ssm.reset();
  sns.reset();
  metrics = [];
  deleted = [];
  stopped = [];
  deps = {
    autoScaling: () => new AutoScalingClient({ region: "us-east-1" }),
    ssmSend: () => new SSMClient({ region: "us-east-1" }),
    autoScalingStart: () => new AutoScalingClient({ region: "us-east-1" }),
    sns: () => new SNSClient({ region: "us-east-1" }),
    buildkite: {
      deleteToken: async (id) => {
        deleted.push(id);
        return id === "gone" ? "already-gone" : "deleted";
      },
      stopAgent: async (id) => void stopped.push(id),
    },
    alertTopicArn: TOPIC,
    inPlace: { documentName: "BuildkiteAgentTokenRotation-InstallAgentToken", deliveryTimeoutSeconds: 300 },
    tokenParameterName: "/aws/reference/secretsmanager/bk/agent-token",
    logger: createLogger("test", {}, "error"),
    metrics: { put: (name, value) => metrics.push([name, value]) },
    now: () => NOW,
    sleep: async () => undefined,
  };
});

const start: Action = {
  kind: "start-refresh",
  target: group,
  versionId: "v2",
  preferences: prefs,
  reason: "strategy",
};

describe("act", () => {
  it("records the intent, starts a refresh that replaces every instance, then records its id", async () => {
    asg.on(StartInstanceRefreshCommand).resolves({ InstanceRefreshId: "r-1" });
    const result = await act(planWith([start]), obs(), deps);
    expect(result.refreshesStarted).toEqual([{ ...group, refreshId: "r-1" }]);
    expect(asg.commandCalls(StartInstanceRefreshCommand)[0]?.args[0].input).toEqual({
      AutoScalingGroupName: "ci-a",
      Strategy: "Rolling",
      Preferences: {
        SkipMatching: false,
        MinHealthyPercentage: 75,
        MaxHealthyPercentage: 150,
        InstanceWarmup: 30,
        ScaleInProtectedInstances: "Refresh",
      },
    });
    const written = tags();
    expect(written.map((t) => t?.Key)).toEqual([MARKER_TAG, MARKER_TAG]);
    expect(decodeRefreshMarker(written[0]?.Value)).toEqual({
      versionId: "v2",
      intentAt: NOW,
      refreshId: undefined,
    });
    expect(decodeRefreshMarker(written[1]?.Value)).toEqual({
      versionId: "v2",
      intentAt: NOW,
      refreshId: "r-1",
    });
  });

  it("leaves the ids to the next round when asked, and records the carried ones with its intents in one call", async () => {
    asg.on(StartInstanceRefreshCommand).resolves({ InstanceRefreshId: "r-1" });
    const first = await act(planWith([start]), obs(), { ...deps, recordIdsLater: true });
    // Only the intent was written; the id is returned, not recorded.
    expect(tags().map((t) => decodeRefreshMarker(t?.Value)?.refreshId)).toEqual([undefined]);
    expect(first.idsToRecord).toEqual([{ ...group, versionId: "v2", intentAt: NOW, refreshId: "r-1" }]);

    asg.resetHistory();
    const other = { region: "us-east-1", groupName: "ci-b" };
    await act(planWith([{ ...start, target: other }]), obs(), { ...deps, idsCarried: first.idsToRecord });
    // The next round's intent and the carried id in one CreateOrUpdateTags; then its own id.
    const calls = asg
      .commandCalls(CreateOrUpdateTagsCommand)
      .map((c) =>
        (c.args[0].input.Tags ?? []).map(
          (t) => `${t.ResourceId}:${decodeRefreshMarker(t.Value)?.refreshId ?? "intent"}`,
        ),
      );
    expect(calls).toEqual([["ci-b:intent", "ci-a:r-1"], ["ci-b:r-1"]]);
  });

  it("never writes a carried id over a new intent for the same group", async () => {
    asg.on(StartInstanceRefreshCommand).resolves({ InstanceRefreshId: "r-2" });
    const carried = [
      { ...group, versionId: "v2", intentAt: new Date("2026-11-22T11:59:00Z"), refreshId: "r-1" },
    ];
    await act(planWith([start]), obs(), { ...deps, idsCarried: carried });
    // Every marker written, in every call: the new intent, then its refresh's id; never r-1.
    const written = asg
      .commandCalls(CreateOrUpdateTagsCommand)
      .flatMap((c) => (c.args[0].input.Tags ?? []).map((t) => decodeRefreshMarker(t.Value)?.refreshId));
    expect(written).toEqual([undefined, "r-2"]);
  });

  it("records the ids a round left when no round follows (recordRefreshIds), warning of the ones that failed", async () => {
    asg.on(CreateOrUpdateTagsCommand).rejects(Object.assign(new Error("denied"), { name: "AccessDenied" }));
    const warnings: string[] = [];
    const logger = { ...deps.logger, warn: (message: string) => void warnings.push(message) };
    await recordRefreshIds({ ...deps, logger }, [
      { ...group, versionId: "v2", intentAt: NOW, refreshId: "r-1" },
    ]);
    expect(decodeRefreshMarker(tags()[0]?.Value)?.refreshId).toBe("r-1");
    expect(warnings).toEqual(["could not record the refresh id; the next run adopts the refresh"]);
  });

  it("tries a throttled start again (refused before it ran), but never a start whose response was lost", async () => {
    asg
      .on(StartInstanceRefreshCommand)
      .rejectsOnce(Object.assign(new Error("Rate exceeded"), { name: "Throttling" }))
      .resolves({ InstanceRefreshId: "r-2" });
    const throttled = await act(planWith([start]), obs(), deps);
    expect(throttled.refreshesStarted).toEqual([{ ...group, refreshId: "r-2" }]);
    expect(asg.commandCalls(StartInstanceRefreshCommand)).toHaveLength(2);

    asg.reset();
    asg
      .on(StartInstanceRefreshCommand)
      .rejects(Object.assign(new Error("socket hang up"), { name: "TimeoutError" }));
    const lost = await act(planWith([start]), obs(), deps);
    expect(lost.refreshesStarted).toEqual([]);
    expect(asg.commandCalls(StartInstanceRefreshCommand)).toHaveLength(1);
  });

  it("starts nothing when the intent cannot be recorded (a start it could not find again could be doubled)", async () => {
    asg.on(CreateOrUpdateTagsCommand).rejects(Object.assign(new Error("lost"), { name: "TimeoutError" }));
    const result = await act(planWith([start]), obs(), deps);
    expect(asg.commandCalls(StartInstanceRefreshCommand)).toHaveLength(0);
    expect(result.failures).toEqual([{ action: "start-refresh", error: "TimeoutError: lost" }]);
  });

  it("treats InstanceRefreshInProgress as a running refresh to adopt or wait for, not a failure", async () => {
    asg
      .on(StartInstanceRefreshCommand)
      .rejects(Object.assign(new Error("busy"), { name: "InstanceRefreshInProgressFault" }));
    const result = await act(planWith([start]), obs(), deps);
    expect(result.failures).toEqual([]);
    expect(tags()).toHaveLength(1);
  });

  it("adopts a refresh by recording its id with the original intent", async () => {
    const intentAt = new Date("2026-11-22T11:58:00Z");
    await act(
      planWith([{ kind: "adopt-refresh", target: group, versionId: "v2", intentAt, refreshId: "r-9" }]),
      obs(),
      deps,
    );
    expect(decodeRefreshMarker(tags()[0]?.Value)).toEqual({ versionId: "v2", intentAt, refreshId: "r-9" });
  });

  it("records the sync time on the group", async () => {
    await act(planWith([{ kind: "record-sync", target: group, versionId: "v2", at: NOW }]), obs(), deps);
    expect(tags()[0]?.Key).toBe(SYNC_TAG);
    expect(decodeSync(tags()[0]?.Value)).toEqual({ versionId: "v2", at: NOW });
    expect(metrics).toContainEqual(["ReplicaSyncSeconds", 600]);
  });

  it("reports a region's sync once, however many of its groups record it, and not where the tag failed", async () => {
    const regions: string[] = [];
    deps.metrics = {
      put: (name, _value, _unit, dims) =>
        void (name === "ReplicaSyncSeconds" && regions.push(dims?.Region ?? "")),
    };
    asg.on(CreateOrUpdateTagsCommand).callsFake((input: { Tags?: Array<{ ResourceId?: string }> }) => {
      if (input.Tags?.some((t) => t.ResourceId === "ci-broken")) throw new Error("boom");
      return {};
    });
    const sync = (region: string, groupName: string): Action => ({
      kind: "record-sync",
      target: { region, groupName },
      versionId: "v2",
      at: NOW,
    });
    await act(
      planWith([
        sync("us-east-1", "ci-a"),
        sync("us-east-1", "ci-b"),
        sync("eu-west-1", "ci-c"),
        sync("ap-south-1", "ci-broken"),
      ]),
      obs(),
      deps,
    );
    expect(regions.sort()).toEqual(["eu-west-1", "us-east-1"]);
  });

  it("sends the install document with the parameter path only, never the token, and never stops on one failure", async () => {
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: "c-1" } });
    const result = await act(
      planWith([{ kind: "send-command", region: "us-east-1", versionId: "v2", instanceIds: ["i-1", "i-2"] }]),
      obs(),
      deps,
    );
    expect(result.commandsSent).toEqual([
      { region: "us-east-1", commandId: "c-1", instances: 2, instanceIds: ["i-1", "i-2"] },
    ]);
    expect(ssm.commandCalls(SendCommandCommand)[0]?.args[0].input).toEqual({
      DocumentName: "BuildkiteAgentTokenRotation-InstallAgentToken",
      InstanceIds: ["i-1", "i-2"],
      Parameters: { TokenParameterName: ["/aws/reference/secretsmanager/bk/agent-token"] },
      Comment: "bk-token-rotation v=v2",
      TimeoutSeconds: 300,
      MaxConcurrency: "50",
      MaxErrors: "100%",
    });
  });

  it("does not resend after a lost SendCommand response: the next run sees the command", async () => {
    ssm.on(SendCommandCommand).rejects(Object.assign(new Error("socket hang up"), { name: "TimeoutError" }));
    const result = await act(
      planWith([{ kind: "send-command", region: "us-east-1", versionId: "v2", instanceIds: ["i-1"] }]),
      obs(),
      deps,
    );
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(1);
    expect(result.failures).toHaveLength(1);
  });

  it("stops an agent through Buildkite and replaces an instance without decrementing the group", async () => {
    await act(
      planWith([
        { kind: "stop-agent", target: group, instanceId: "i-1", agentId: "a-1" },
        { kind: "terminate-instance", target: group, instanceId: "i-2" },
      ]),
      obs(),
      deps,
    );
    expect(stopped).toEqual(["a-1"]);
    expect(asg.commandCalls(TerminateInstanceInAutoScalingGroupCommand)[0]?.args[0].input).toEqual({
      InstanceId: "i-2",
      ShouldDecrementDesiredCapacity: false,
    });
  });

  it("revokes, counts 'already gone' as revoked, and records completion once", async () => {
    const result = await act(
      planWith([
        { kind: "revoke", tokenId: "t1", versionId: "v1" },
        { kind: "revoke", tokenId: "gone", versionId: "v0" },
        {
          kind: "record-rollout",
          versionId: "v2",
          complete: true,
          unobservableSince: undefined,
          observedAt: NOW,
        },
      ]),
      obs(),
      deps,
    );
    expect(deleted).toEqual(["t1", "gone"]);
    expect(result.revoked).toEqual(["t1", "gone"]);
    expect(metrics).toContainEqual(["TokensRevoked", 2]);
    expect(metrics).toContainEqual(["PromotionToRevocationSeconds", 600]);
    expect(tags()[0]?.Key).toBe(ROLLOUT_TAG);
    expect(decodeRolloutMarker(tags()[0]?.Value)).toEqual({
      versionId: "v2",
      complete: true,
      alerts: [],
      unobservableSince: undefined,
      // When the full observation this plan came from began, for a cold container's coalescing.
      observedAt: NOW,
    });
  });

  it("does not record completion when a revocation failed (the next run retries)", async () => {
    deps.buildkite = {
      deleteToken: async () => {
        throw new Error("503");
      },
      stopAgent: async () => {},
    };
    const result = await act(
      planWith([
        { kind: "revoke", tokenId: "t1", versionId: "v1" },
        {
          kind: "record-rollout",
          versionId: "v2",
          complete: true,
          unobservableSince: undefined,
          observedAt: NOW,
        },
      ]),
      obs(),
      deps,
    );
    expect(result.failures).toHaveLength(1);
    expect(tags()).toHaveLength(0);
  });

  it("publishes each alert and remembers the published ones on the anchor group", async () => {
    sns.on(PublishCommand).resolves({ MessageId: "m" });
    const longSubject = `Buildkite token rollout blocked: refresh of ${"x".repeat(120)}`;
    await act(
      planWith([
        { kind: "alert", key: "refresh-failed:a", subject: longSubject, message: "What: …" },
        {
          kind: "record-rollout",
          versionId: "v2",
          complete: false,
          unobservableSince: undefined,
          observedAt: NOW,
        },
      ]),
      obs({
        rollout: {
          alertsSent: ["0123456789"],
          complete: false,
          unobservableSince: undefined,
          observedAt: undefined,
        },
      }),
      deps,
    );
    const input = sns.commandCalls(PublishCommand)[0]?.args[0].input;
    expect(input?.TopicArn).toBe(TOPIC);
    expect(input?.Subject?.length).toBeLessThanOrEqual(100);
    expect(input?.Subject).toMatch(/^[\x20-\x7e]+$/);
    expect(decodeRolloutMarker(tags()[0]?.Value)?.alerts).toEqual([
      "0123456789",
      alertId("refresh-failed:a"),
    ]);
    expect(metrics).toContainEqual(["RolloutsBlocked", 1]);
  });

  it("does not remember an alert it could not publish", async () => {
    sns.on(PublishCommand).rejects(new Error("throttled"));
    const result = await act(
      planWith([
        { kind: "alert", key: "budget", subject: "s", message: "m" },
        {
          kind: "record-rollout",
          versionId: "v2",
          complete: false,
          unobservableSince: undefined,
          observedAt: NOW,
        },
      ]),
      obs(),
      deps,
    );
    expect(result.alerted).toEqual([]);
    expect(tags()).toHaveLength(0);
  });

  it.each([
    ["refresh-failed:us-east-1:g:r", "RolloutsBlocked"],
    ["refresh-partial:us-east-1:g:r", "RolloutsBlocked"],
    ["in-place-stuck:us-east-1:g", "RolloutsBlocked"],
    ["replica-failed:eu-west-1", "RolloutsBlocked"],
    ["group-missing:eu-west-1:g", "RolloutsBlocked"],
    ["budget", "RolloutsSlow"],
    ["replica-slow:eu-west-1", "RolloutsSlow"],
    ["token-expiring:v2", "TokenExpiringSoon"],
  ])("counts alert %s as %s", (key, metric) => {
    expect(alertMetric(key)).toBe(metric);
  });
});
