import type { AutoScalingClient } from "@aws-sdk/client-auto-scaling";
import type { EC2Client } from "@aws-sdk/client-ec2";
import type { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import type { SNSClient } from "@aws-sdk/client-sns";
import type { SSMClient } from "@aws-sdk/client-ssm";
import type { BuildkiteClient } from "../buildkite/client";
import type { ReconcileConfig } from "../config";
import { describeError } from "../errors";
import type { Logger } from "../log";
import type { MetricsSink } from "../metrics";
import { backoffDelay, type Sleep } from "../sleep";
import { type ActResult, act } from "./act";
import { instanceCounts } from "./model";
import { observe, replicaCurrentVersion } from "./observe";
import { plan } from "./plan";
import type { Trigger } from "./trigger";
import type { Plan, PlanSettings } from "./types";

export interface ReconcileDeps {
  config: ReconcileConfig;
  secrets: (region: string) => SecretsManagerClient;
  autoScaling: (region: string) => AutoScalingClient;
  ec2: (region: string) => EC2Client;
  ssm: (region: string) => SSMClient;
  /** SSM clients without SDK retries, for SendCommand (not idempotent). */
  ssmSend: (region: string) => SSMClient;
  sns: (region: string) => SNSClient;
  buildkite: Pick<BuildkiteClient, "listTokens" | "deleteToken" | "listAgents" | "stopAgent">;
  logger: Logger;
  metrics: MetricsSink;
  now: () => Date;
  sleep: Sleep;
  /** Milliseconds left in this invocation. */
  remainingMs: () => number;
}

/** What one invocation was asked to handle: the triggers of its batch, already validated and filtered. */
export interface ReconcileRequest {
  triggers: Trigger[];
}

export interface ReconcileOutcome {
  plan: Plan;
  rounds: number;
  results: ActResult[];
}

/** Stop waiting this long before the Lambda deadline, leaving time to act and log. */
const DEADLINE_MARGIN_MS = 20_000;
const MAX_ROUNDS = 60;

export function planSettings(config: ReconcileConfig): PlanSettings {
  return {
    primaryRegion: config.secret.region,
    strategy: config.strategy,
    preferences: config.refresh,
    maxRolloutSeconds: config.maxRolloutSeconds,
    clockSkewMs: config.clockSkewMs,
    replicaAlertSeconds: config.replicaAlertSeconds,
    inPlace: {
      fallback: config.inPlace.fallback,
      fallbackAfterSeconds: config.inPlace.fallbackAfterSeconds,
      retrySeconds: config.inPlace.retrySeconds,
      bootGraceSeconds: config.inPlace.bootGraceSeconds,
    },
  };
}

/** The SSM parameter path through which instances read the secret (the Elastic CI Stack's BuildkiteAgentTokenParameterStorePath). */
export function tokenParameterName(config: Pick<ReconcileConfig, "secret">): string {
  return `/aws/reference/secretsmanager/${config.secret.name}`;
}

/**
 * One reconcile run: observe → plan → act, again after waiting (bounded, within the deadline) for
 * lagging replicas, so that a region that catches up is rolled out in the same run, and for the
 * install commands in flight (in-place produces no refresh events). Refreshes are not waited for:
 * their completion events (and the schedule) trigger the next run; nor are instances that only a
 * later retry can reach.
 */
export async function reconcile(
  deps: ReconcileDeps,
  _request: ReconcileRequest = { triggers: [] },
): Promise<ReconcileOutcome> {
  const settings = planSettings(deps.config);
  const results: ActResult[] = [];
  let current: Plan | undefined;
  let rounds = 0;
  let commandPolls = 0;
  while (rounds < MAX_ROUNDS) {
    rounds++;
    const observation = await observe(deps);
    current = plan(observation, settings);
    const result = await act(current, observation, {
      ...deps,
      alertTopicArn: deps.config.alertTopicArn,
      inPlace: deps.config.inPlace,
      tokenParameterName: tokenParameterName(deps.config),
    });
    results.push(result);
    deps.logger.info("reconcile round", {
      round: rounds,
      versionId: current.versionId ?? null,
      waitingFor: current.waitingFor,
      complete: current.complete,
      targets: current.targets.map((t) => ({
        target: `${t.region}:${t.groupName}`,
        phase: t.phase,
        refreshId: t.refreshId,
        ...(t.instances.length > 0 ? { instances: instanceCounts(t) } : {}),
      })),
      regionsBehind: current.regionsBehind,
      actions: current.actions.map((a) => a.kind),
      refreshesStarted: result.refreshesStarted.length,
      commandsSent: result.commandsSent.length,
      revoked: result.revoked.length,
    });
    for (const notice of current.notices) deps.logger.info("notice", { notice });

    // A refresh we just started or a revocation we just made changes what the next observation
    // sees; anything else that could change soon is a lagging replica.
    const waitForReplicas = current.waitingFor.includes("replicas") && current.versionId !== undefined;
    if (!waitForReplicas) {
      // Commands just sent or still running report within seconds: poll them in this run.
      // A SendCommand that failed may have created its command all the same (a lost response):
      // look again in this run rather than leave it to another trigger.
      const inFlight =
        result.commandsSent.length > 0 ||
        result.failures.some((f) => f.action === "send-command") ||
        current.targets.some((t) => t.instances.some((i) => i.state === "in-flight"));
      if (!inFlight || current.complete) break;
      const delay = backoffDelay(commandPolls++, 250, 2_000);
      if (deps.remainingMs() < DEADLINE_MARGIN_MS + delay) break;
      await deps.sleep(delay);
      continue;
    }
    const synced = await waitForReplicaSync(deps, current.versionId ?? "", current.regionsLagging);
    if (!synced) {
      deps.logger.info("replicas still behind at the end of this run's budget; the next trigger continues", {
        regionsLagging: current.regionsLagging,
      });
      break;
    }
  }
  if (!current) throw new Error("reconcile made no round");
  return { plan: current, rounds, results };
}

/** Polls the lagging regions with capped backoff until they serve `versionId` or time runs out. */
async function waitForReplicaSync(
  deps: ReconcileDeps,
  versionId: string,
  regions: string[],
): Promise<boolean> {
  let behind = [...regions];
  for (let attempt = 0; behind.length > 0; attempt++) {
    // Replication usually lands within seconds: poll briskly at first (every ≤ 250 ms, well inside
    // DescribeSecret quotas), then back off for a replica that is slow.
    const delay = backoffDelay(attempt, 100, attempt < 40 ? 250 : 2_000);
    if (deps.remainingMs() < DEADLINE_MARGIN_MS + delay) return false;
    await deps.sleep(delay);
    const served = await Promise.all(
      behind.map((region) =>
        replicaCurrentVersion(deps.secrets(region), deps.config.secret.name).catch((error: unknown) => {
          deps.logger.debug("replica check failed", { region, error: describeError(error) });
          return undefined;
        }),
      ),
    );
    behind = behind.filter((_, i) => served[i] !== versionId);
  }
  return true;
}
