import {
  type AutoScalingClient,
  CreateOrUpdateTagsCommand,
  StartInstanceRefreshCommand,
} from "@aws-sdk/client-auto-scaling";
import { PublishCommand, type SNSClient } from "@aws-sdk/client-sns";
import type { BuildkiteClient } from "../buildkite/client";
import type { TargetGroup } from "../config";
import { describeError } from "../errors";
import type { Logger } from "../log";
import type { MetricsSink } from "../metrics";
import { alertId, anchorOf, encodeRefreshMarker, encodeRolloutMarker } from "./markers";
import { MARKER_TAG, ROLLOUT_TAG, rolloutStartedAt } from "./plan";
import type { Action, Observation, Plan } from "./types";

export interface ActDeps {
  autoScaling: (region: string) => AutoScalingClient;
  sns: (region: string) => SNSClient;
  buildkite: Pick<BuildkiteClient, "deleteToken">;
  alertTopicArn: string | undefined;
  logger: Logger;
  metrics: MetricsSink;
  now: () => Date;
}

export interface ActResult {
  refreshesStarted: Array<TargetGroup & { refreshId: string }>;
  revoked: string[];
  alerted: string[];
  failures: Array<{ action: Action["kind"]; error: string }>;
}

type Kind<K extends Action["kind"]> = Extract<Action, { kind: K }>;

/** Carries out a plan. Every effect is safe to repeat: the next run re-observes and re-plans. */
export async function act(plan: Plan, obs: Observation, deps: ActDeps): Promise<ActResult> {
  const result: ActResult = { refreshesStarted: [], revoked: [], alerted: [], failures: [] };
  const of = <K extends Action["kind"]>(kind: K) => plan.actions.filter((a): a is Kind<K> => a.kind === kind);
  const promotedAt = rolloutStartedAt(obs);
  const since = (t: Date | undefined) => (t ? (deps.now().getTime() - t.getTime()) / 1000 : undefined);

  // Regions and groups progress in parallel.
  await Promise.all(
    of("start-refresh").map(async (a) => {
      try {
        const refreshId = await startRefresh(deps.autoScaling(a.target.region), a);
        result.refreshesStarted.push({ ...a.target, refreshId });
        deps.logger.info("started instance refresh", { ...a.target, refreshId, versionId: a.versionId });
        const sync = since(promotedAt);
        if (sync !== undefined)
          deps.metrics.put("ReplicaSyncSeconds", sync, "Seconds", { Region: a.target.region });
      } catch (error) {
        const e = describeError(error);
        if (e.name.startsWith("InstanceRefreshInProgress")) {
          // Someone started one between our observation and now: the next run waits for it.
          deps.logger.info("a refresh started meanwhile; will wait for it", { ...a.target });
          return;
        }
        result.failures.push({ action: a.kind, error: `${e.name}: ${e.message}` });
        deps.logger.error("could not start instance refresh", { ...a.target, error: e });
      }
    }),
  );

  // Revocation happens only when the plan found every group refreshed; sequential to spare rate limits.
  for (const a of of("revoke")) {
    try {
      const outcome = await deps.buildkite.deleteToken(a.tokenId);
      result.revoked.push(a.tokenId);
      deps.logger.info("revoked old agent token", { tokenId: a.tokenId, versionId: a.versionId, outcome });
    } catch (error) {
      result.failures.push({ action: a.kind, error: describeError(error).message });
      deps.logger.error("could not revoke old agent token; the next run retries", {
        tokenId: a.tokenId,
        error: describeError(error),
      });
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
      result.failures.push({ action: a.kind, error: describeError(error).message });
      deps.logger.error("could not publish alert; it will be retried", {
        key: a.key,
        error: describeError(error),
      });
    }
  }

  // Completion counts only when everything else in this run succeeded (a failed revocation retries).
  const completed = result.failures.length === 0 ? of("record-complete")[0] : undefined;
  if (completed) {
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
    deps.logger.info("rollout complete", { versionId: completed.versionId, seconds: total });
  }

  // Record what was sent and whether the rollout is complete, so the next run neither re-alerts
  // nor re-reports completion.
  const anchor = anchorOf(obs.targets);
  if (anchor && plan.versionId && (result.alerted.length > 0 || completed)) {
    const alerts = [...obs.alertsSent, ...result.alerted.map(alertId)];
    const value = encodeRolloutMarker({
      versionId: plan.versionId,
      complete: completed !== undefined || obs.completedVersion === plan.versionId,
      alerts,
    });
    await tagGroup(deps.autoScaling(anchor.region), anchor.groupName, ROLLOUT_TAG, value).catch(
      (error: unknown) => deps.logger.warn("could not record rollout state", { error: describeError(error) }),
    );
  }
  return result;
}

async function startRefresh(client: AutoScalingClient, a: Kind<"start-refresh">): Promise<string> {
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
        // The Elastic CI Stack protects busy instances from scale-in; say what to do with them.
        ScaleInProtectedInstances: p.scaleInProtectedInstances,
      },
    }),
  );
  if (!out.InstanceRefreshId) throw new Error("StartInstanceRefresh returned no id");
  // Written right after the start: a crash in between costs one extra refresh later, never safety.
  await tagGroup(
    client,
    a.target.groupName,
    MARKER_TAG,
    encodeRefreshMarker({ versionId: a.versionId, refreshId: out.InstanceRefreshId }),
  );
  return out.InstanceRefreshId;
}

/** Sets one tag on an Auto Scaling group (not propagated to instances). */
export async function tagGroup(
  client: AutoScalingClient,
  groupName: string,
  key: string,
  value: string,
): Promise<void> {
  await client.send(
    new CreateOrUpdateTagsCommand({
      Tags: [
        {
          ResourceId: groupName,
          ResourceType: "auto-scaling-group",
          Key: key,
          Value: value,
          PropagateAtLaunch: false,
        },
      ],
    }),
  );
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
