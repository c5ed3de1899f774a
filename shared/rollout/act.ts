import {
  type AutoScalingClient,
  CreateOrUpdateTagsCommand,
  StartInstanceRefreshCommand,
  TerminateInstanceInAutoScalingGroupCommand,
} from "@aws-sdk/client-auto-scaling";
import { PublishCommand, type SNSClient } from "@aws-sdk/client-sns";
import { SendCommandCommand, type SSMClient } from "@aws-sdk/client-ssm";
import type { BuildkiteClient } from "../buildkite/client";
import { isThrottling } from "../lib/aws/errors";
import type { InPlaceSettings, TargetGroup } from "../lib/config";
import { describeError } from "../lib/errors";
import { CALLS_PER_REGION, perKeyLimit } from "../lib/limit";
import type { Logger } from "../lib/log";
import type { MetricsSink } from "../lib/metrics";
import { backoffDelay, type Sleep } from "../lib/sleep";
import { commandComment } from "./install-result";
import { alertId, encodeRefreshMarker, encodeRolloutMarker, encodeSync } from "./markers";
import { groupKey } from "./model";
import { MARKER_TAG, ROLLOUT_TAG, rolloutStartedAt, SYNC_TAG } from "./plan";
import type { Action, Observation, Plan, RefreshMarker } from "./types";

export interface ActDeps {
  autoScaling: (region: string) => AutoScalingClient;
  /** For StartInstanceRefresh and TerminateInstanceInAutoScalingGroup: no SDK retries (not idempotent). */
  autoScalingStart: (region: string) => AutoScalingClient;
  /** For SendCommand: clients without SDK retries (SendCommand is not idempotent). */
  ssmSend: (region: string) => SSMClient;
  sns: (region: string) => SNSClient;
  buildkite: Pick<BuildkiteClient, "deleteToken" | "stopAgent">;
  alertTopicArn: string | undefined;
  /** The install document and SendCommand settings; the token parameter is the secret's SSM reference path. */
  inPlace: Pick<InPlaceSettings, "documentName" | "deliveryTimeoutSeconds">;
  tokenParameterName: string;
  logger: Logger;
  metrics: MetricsSink;
  now: () => Date;
  sleep: Sleep;
  /**
   * The ids of the refreshes the run's previous round started, left for this act to record with
   * its own intents (one CreateOrUpdateTags phase instead of two); see `recordIdsLater`.
   */
  idsCarried?: readonly RefreshIdTag[];
  /**
   * Set when another round follows at once (reconcile: refresh starts left): the ids of the
   * refreshes started here are returned in `idsToRecord` instead of written, and that round's act
   * (or reconcile, when the run ends first) records them. A lost id is no lost refresh: the next
   * look adopts the refresh that fits the intent, as it does after a lost write.
   */
  recordIdsLater?: boolean;
}

/** Our refresh tag naming a refresh that started for the intent recorded at `intentAt`. */
export type RefreshIdTag = TargetGroup & RefreshMarker & { refreshId: string };

export interface ActResult {
  refreshesStarted: Array<TargetGroup & { refreshId: string }>;
  commandsSent: Array<{ region: string; commandId: string; instances: number; instanceIds: string[] }>;
  revoked: string[];
  alerted: string[];
  failures: Array<{ action: Action["kind"]; error: string }>;
  /**
   * Groups whose refresh this act meant to start and did not see started: the intent could not be
   * recorded, or the call failed (perhaps after AWS had started it: a lost response). Only a look at
   * the group tells which; reconcile looks again within the run.
   */
  startsFailed: TargetGroup[];
  /** The ids of the refreshes started, when `recordIdsLater` left them to record; empty otherwise. */
  idsToRecord: RefreshIdTag[];
}

type Kind<K extends Action["kind"]> = Extract<Action, { kind: K }>;

/**
 * Carries out a plan, and nothing but the plan. Every effect is safe to repeat: the next run
 * re-observes and re-plans. A call whose outcome is unknown (a lost response) is never compensated:
 * the next observation shows what happened (tags, refresh history, command history).
 */
export async function act(plan: Plan, obs: Observation, deps: ActDeps): Promise<ActResult> {
  const result: ActResult = {
    refreshesStarted: [],
    commandsSent: [],
    revoked: [],
    alerted: [],
    failures: [],
    startsFailed: [],
    idsToRecord: [],
  };
  const of = <K extends Action["kind"]>(kind: K) => plan.actions.filter((a): a is Kind<K> => a.kind === kind);
  const promotedAt = rolloutStartedAt(obs);
  const since = (t: Date | undefined) => (t ? (deps.now().getTime() - t.getTime()) / 1000 : undefined);
  const fail = (a: Action, error: unknown, message: string, context: Record<string, unknown>) => {
    const e = describeError(error);
    result.failures.push({ action: a.kind, error: `${e.name}: ${e.message}` });
    deps.logger.error(message, { ...context, error: e });
  };

  // Sync times first: a command or refresh below relies on the region being recorded as in sync.
  // One CreateOrUpdateTags carries many groups' tags (tagGroups), so a thousand groups cost a few calls.
  const syncs = of("record-sync");
  const syncFailures = await tagGroups(
    deps.autoScaling,
    syncs.map((a) => ({ ...a.target, key: SYNC_TAG, value: encodeSync(a.versionId, a.at) })),
  );
  // One data point per region: the sync is the region's, however many of its groups recorded it.
  const syncedRegions = new Set<string>();
  for (const a of syncs) {
    const error = syncFailures.get(groupKey(a.target));
    if (error !== undefined) {
      fail(a, error, "could not record the sync time", { ...a.target });
      continue;
    }
    syncedRegions.add(a.target.region);
  }
  const sync = since(promotedAt);
  if (sync !== undefined)
    for (const region of syncedRegions)
      deps.metrics.put("ReplicaSyncSeconds", sync, "Seconds", { Region: region });

  // Refresh intents are recorded together before any start: a group whose intent could not be
  // recorded is not started (a start we could not find again later could be doubled).
  // The previous round's ids go in the same calls, but never over a new intent for their group.
  const starts = of("start-refresh");
  const intentAt = deps.now();
  const intended = new Set(starts.map((a) => groupKey(a.target)));
  const carried = (deps.idsCarried ?? []).filter((t) => !intended.has(groupKey(t)));
  const intentFailures = await tagGroups(deps.autoScaling, [
    ...starts.map((a) => markerTag(a.target, { versionId: a.versionId, intentAt, refreshId: undefined })),
    ...carried.map((t) => markerTag(t, t)),
  ]);
  warnUnrecorded(deps.logger, carried, intentFailures);
  const started: Array<{ a: Kind<"start-refresh">; refreshId: string }> = [];
  const limit = perKeyLimit(CALLS_PER_REGION);

  // Regions and groups progress in parallel.
  await Promise.all([
    ...of("adopt-refresh").map((a) =>
      tagGroup(
        deps.autoScaling(a.target.region),
        a.target.groupName,
        MARKER_TAG,
        encodeRefreshMarker({ versionId: a.versionId, intentAt: a.intentAt, refreshId: a.refreshId }),
      )
        .then(() =>
          deps.logger.info("adopted the refresh started for our intent", {
            ...a.target,
            refreshId: a.refreshId,
          }),
        )
        .catch((error: unknown) => fail(a, error, "could not record the adopted refresh", { ...a.target })),
    ),
    ...starts.map(async (a) => {
      const intentError = intentFailures.get(groupKey(a.target));
      if (intentError !== undefined) {
        fail(a, intentError, "could not record the refresh intent; no refresh started", { ...a.target });
        result.startsFailed.push(a.target);
        return;
      }
      try {
        const refreshId = await limit(a.target.region, () =>
          startRefresh(deps.autoScalingStart(a.target.region), a, deps.sleep),
        );
        started.push({ a, refreshId });
        result.refreshesStarted.push({ ...a.target, refreshId });
        deps.logger.info("started instance refresh", {
          ...a.target,
          refreshId,
          versionId: a.versionId,
          reason: a.reason,
        });
      } catch (error) {
        const e = describeError(error);
        if (e.name.startsWith("InstanceRefreshInProgress")) {
          // Someone's refresh (perhaps ours, after a lost response) runs: the next run adopts or waits.
          deps.logger.info("a refresh is already running; the next run adopts or waits for it", {
            ...a.target,
          });
          return;
        }
        fail(a, error, "could not start instance refresh", { ...a.target });
        result.startsFailed.push(a.target);
      }
    }),
    ...of("send-command").map(async (a) => {
      try {
        const out = await deps.ssmSend(a.region).send(
          new SendCommandCommand({
            DocumentName: deps.inPlace.documentName,
            InstanceIds: a.instanceIds,
            // The token never travels in the command: the document reads it through the instance role.
            Parameters: { TokenParameterName: [deps.tokenParameterName] },
            Comment: commandComment(a.versionId),
            TimeoutSeconds: deps.inPlace.deliveryTimeoutSeconds,
            MaxConcurrency: "50",
            // One instance's failure says nothing about the others: never stop the batch.
            MaxErrors: "100%",
          }),
        );
        const commandId = out.Command?.CommandId ?? "unknown";
        result.commandsSent.push({
          region: a.region,
          commandId,
          instances: a.instanceIds.length,
          instanceIds: a.instanceIds,
        });
        deps.logger.info("sent the install command", {
          region: a.region,
          commandId,
          instances: a.instanceIds.length,
          versionId: a.versionId,
        });
      } catch (error) {
        // A lost response may hide a command that was sent: the next run sees it in ListCommands
        // and does not send again to those instances within the retry interval.
        fail(a, error, "could not send the install command; the next run retries", {
          region: a.region,
          instances: a.instanceIds.length,
        });
      }
    }),
    ...of("stop-agent").map(async (a) => {
      try {
        await deps.buildkite.stopAgent(a.agentId);
        deps.logger.info("asked the agent to stop after its current job", {
          ...a.target,
          instanceId: a.instanceId,
          agentId: a.agentId,
        });
      } catch (error) {
        fail(a, error, "could not stop the agent", { ...a.target, instanceId: a.instanceId });
      }
    }),
    ...of("terminate-instance").map(async (a) => {
      try {
        await deps.autoScalingStart(a.target.region).send(
          new TerminateInstanceInAutoScalingGroupCommand({
            InstanceId: a.instanceId,
            // The group launches a replacement, which reads the new token at boot.
            ShouldDecrementDesiredCapacity: false,
          }),
        );
        deps.metrics.put("InstancesReplaced", 1, "Count", { Region: a.target.region });
        deps.logger.info("terminated an instance the install command could not reach", {
          ...a.target,
          instanceId: a.instanceId,
        });
      } catch (error) {
        fail(a, error, "could not terminate the instance", { ...a.target, instanceId: a.instanceId });
      }
    }),
  ]);

  // The ids of the refreshes started, together (or with the next round's intents). A lost write
  // leaves the intent: the next run adopts the refresh that fits it.
  const ids = started.map(({ a, refreshId }) => ({
    ...a.target,
    versionId: a.versionId,
    intentAt,
    refreshId,
  }));
  if (deps.recordIdsLater) result.idsToRecord = ids;
  else await recordRefreshIds(deps, ids);

  // Revocation happens only when the plan found every instance safe; sequential to spare rate limits.
  for (const a of of("revoke")) {
    try {
      const outcome = await deps.buildkite.deleteToken(a.tokenId);
      result.revoked.push(a.tokenId);
      deps.logger.info("revoked old agent token", { tokenId: a.tokenId, versionId: a.versionId, outcome });
    } catch (error) {
      fail(a, error, "could not revoke old agent token; the next run retries", { tokenId: a.tokenId });
    }
  }
  if (result.revoked.length > 0) deps.metrics.put("TokensRevoked", result.revoked.length, "Count");

  for (const a of of("alert")) {
    deps.metrics.put(alertMetric(a.key), 1, "Count");
    deps.logger.error("rollout alert", { key: a.key, subject: a.subject, detail: a.message });
    if (!deps.alertTopicArn) continue;
    try {
      await deps.sns(topicRegion(deps.alertTopicArn)).send(
        new PublishCommand({
          TopicArn: deps.alertTopicArn,
          Subject: subjectLine(a.subject),
          Message: a.message,
        }),
      );
      result.alerted.push(a.key);
    } catch (error) {
      fail(a, error, "could not publish alert; it will be retried", { key: a.key });
    }
  }

  const record = of("record-rollout")[0];
  if (record) {
    // Completion counts only when everything else in this run succeeded (a failed revocation retries).
    const completeNow = record.complete && result.failures.length === 0;
    if (completeNow && !obs.rollout.complete) {
      const total = since(promotedAt);
      if (total !== undefined) deps.metrics.put("PromotionToRevocationSeconds", total, "Seconds");
      for (const t of plan.targets) {
        const refresh = obs.targets
          .find((o) => o.region === t.region && o.groupName === t.groupName)
          ?.refreshes.find((r) => r.id === t.refreshId);
        if (refresh?.startTime && refresh.endTime) {
          const seconds = (refresh.endTime.getTime() - refresh.startTime.getTime()) / 1000;
          deps.metrics.put("RefreshSeconds", seconds, "Seconds", {
            Region: t.region,
            AutoScalingGroupName: t.groupName,
          });
        }
      }
      deps.logger.info("rollout complete", { versionId: record.versionId, seconds: total });
    }
    const anchor = obs.anchor;
    const value = encodeRolloutMarker({
      versionId: record.versionId,
      complete: completeNow || obs.rollout.complete,
      // Only alerts that were published count as sent: the others are tried again next run.
      alerts: [...obs.rollout.alertsSent, ...result.alerted.map(alertId)],
      unobservableSince: record.unobservableSince,
      observedAt: record.observedAt,
    });
    const changed =
      result.alerted.length > 0 ||
      (completeNow && !obs.rollout.complete) ||
      (record.unobservableSince?.getTime() ?? 0) !== (obs.rollout.unobservableSince?.getTime() ?? 0);
    if (anchor && changed) {
      await tagGroup(deps.autoScaling(anchor.region), anchor.groupName, ROLLOUT_TAG, value).catch(
        (error: unknown) =>
          deps.logger.warn("could not record rollout state", { error: describeError(error) }),
      );
    }
  }
  return result;
}

/**
 * Attempts at a StartInstanceRefresh that Auto Scaling throttled. A throttled request was refused
 * before it ran (error code Throttling, "Rate exceeded"), so trying it again cannot start a second
 * refresh — unlike a lost response, which is never retried.
 */
const THROTTLED_START_ATTEMPTS = 4;

/** Starts the refresh whose intent act() has recorded. */
async function startRefresh(
  client: AutoScalingClient,
  a: Kind<"start-refresh">,
  sleep: Sleep,
): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startRefreshOnce(client, a);
    } catch (error) {
      if (!isThrottling(error) || attempt >= THROTTLED_START_ATTEMPTS) throw error;
      await sleep(backoffDelay(attempt, 500, 4_000));
    }
  }
}

async function startRefreshOnce(client: AutoScalingClient, a: Kind<"start-refresh">): Promise<string> {
  const p = a.preferences;
  const out = await client.send(
    new StartInstanceRefreshCommand({
      AutoScalingGroupName: a.target.groupName,
      Strategy: "Rolling",
      Preferences: {
        // The launch template does not change when the token does: every instance must be replaced.
        SkipMatching: false,
        MinHealthyPercentage: p.minHealthyPercentage,
        ...(p.maxHealthyPercentage !== undefined ? { MaxHealthyPercentage: p.maxHealthyPercentage } : {}),
        ...(p.instanceWarmupSeconds !== undefined ? { InstanceWarmup: p.instanceWarmupSeconds } : {}),
        // The Elastic CI Stack protects every instance from scale-in; say what to do with them.
        ScaleInProtectedInstances: p.scaleInProtectedInstances,
      },
    }),
  );
  if (!out.InstanceRefreshId) throw new Error("StartInstanceRefresh returned no id");
  return out.InstanceRefreshId;
}

/**
 * Tags in one CreateOrUpdateTags call. The API takes a list of tags, each naming its group
 * (API reference: CreateOrUpdateTags, Tags.member.N), and documents no maximum; we send at most this
 * many, a guess kept small because one bad group fails the whole call.
 */
export const TAGS_PER_CALL = 20;

/**
 * Sets each group's tag, batched per region. A batch that fails is retried group by group, so one
 * missing group does not keep the others from being tagged. Returns the groups that failed.
 */
export async function tagGroups(
  autoScaling: (region: string) => AutoScalingClient,
  tags: Array<{ region: string; groupName: string; key: string; value: string }>,
): Promise<Map<string, unknown>> {
  const failures = new Map<string, unknown>();
  const byRegion = new Map<string, typeof tags>();
  for (const t of tags) byRegion.set(t.region, [...(byRegion.get(t.region) ?? []), t]);
  await Promise.all(
    [...byRegion].map(async ([region, inRegion]) => {
      const client = autoScaling(region);
      for (let i = 0; i < inRegion.length; i += TAGS_PER_CALL) {
        const chunk = inRegion.slice(i, i + TAGS_PER_CALL);
        try {
          await client.send(new CreateOrUpdateTagsCommand({ Tags: chunk.map(tagOf) }));
        } catch (error) {
          if (chunk.length === 1) {
            failures.set(groupKey(chunk[0] ?? { region, groupName: "" }), error);
            continue;
          }
          for (const t of chunk) {
            await client
              .send(new CreateOrUpdateTagsCommand({ Tags: [tagOf(t)] }))
              .catch((e: unknown) => failures.set(groupKey(t), e));
          }
        }
      }
    }),
  );
  return failures;
}

/** Records refresh ids (the ones a round left with `recordIdsLater`, when no round follows to carry them). */
export async function recordRefreshIds(
  deps: Pick<ActDeps, "autoScaling" | "logger">,
  ids: readonly RefreshIdTag[],
): Promise<void> {
  if (ids.length === 0) return;
  warnUnrecorded(
    deps.logger,
    ids,
    await tagGroups(
      deps.autoScaling,
      ids.map((t) => markerTag(t, t)),
    ),
  );
}

/** Our refresh tag on a group, as tagGroups takes it: an intent (no refresh id yet) or an id. */
const markerTag = (group: TargetGroup, m: RefreshMarker) => ({
  region: group.region,
  groupName: group.groupName,
  key: MARKER_TAG,
  value: encodeRefreshMarker({ versionId: m.versionId, intentAt: m.intentAt, refreshId: m.refreshId }),
});

function warnUnrecorded(logger: Logger, ids: readonly RefreshIdTag[], failures: Map<string, unknown>) {
  for (const t of ids) {
    const error = failures.get(groupKey(t));
    if (error === undefined) continue;
    logger.warn("could not record the refresh id; the next run adopts the refresh", {
      group: groupKey(t),
      error: describeError(error),
    });
  }
}

const tagOf = (t: { groupName: string; key: string; value: string }) => ({
  ResourceId: t.groupName,
  ResourceType: "auto-scaling-group",
  Key: t.key,
  Value: t.value,
  PropagateAtLaunch: false,
});

/** Sets one tag on an Auto Scaling group (not propagated to instances). */
export async function tagGroup(
  client: AutoScalingClient,
  groupName: string,
  key: string,
  value: string,
): Promise<void> {
  await client.send(new CreateOrUpdateTagsCommand({ Tags: [tagOf({ groupName, key, value })] }));
}

/** The metric an alert counts towards, by the kind its key starts with. */
export function alertMetric(key: string): "RolloutsBlocked" | "RolloutsSlow" | "TokenExpiringSoon" {
  const kind = key.split(":")[0];
  if (kind === "budget" || kind === "replica-slow") return "RolloutsSlow";
  if (kind === "token-expiring") return "TokenExpiringSoon";
  return "RolloutsBlocked";
}

function topicRegion(arn: string): string {
  return arn.split(":")[3] ?? "us-east-1";
}

/** SNS subjects: at most 100 printable ASCII characters, no line breaks. */
function subjectLine(s: string): string {
  const ascii = s.replace(/[^\x20-\x7e]/g, "?");
  return ascii.length > 100 ? `${ascii.slice(0, 99)}…`.replace("…", ".") : ascii;
}
