import type { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import type { TargetGroup } from "../lib/config";
import { describeError } from "../lib/errors";
import type { Logger } from "../lib/log";
import { backoffDelay, type Sleep } from "../lib/sleep";
import { describeSecret } from "../secrets/describe";
import type { ActResult } from "./act";
import type { Handover } from "./handover";
import type { RolloutMemory } from "./memory";
import { groupKey, instanceCounts, targetGroupOf } from "./model";
import { replicaCurrentVersion } from "./observe";
import { CATCH_UP_INTERVAL_MS, catchUp, MAX_CATCH_UPS, type RunScope } from "./scope";
import type { Observation, Plan } from "./types";

/**
 * What a reconcile run does around its rounds that is not a decision: the log line of each round,
 * the wait for lagging replicas, the question to the queue for a catch-up, and the groups a round
 * leaves to look at again (reconcile.ts).
 */

/** Stop waiting this long before the Lambda deadline, leaving time to act and log. */
export const DEADLINE_MARGIN_MS = 20_000;

interface ReplicaWaitDeps {
  config: { secret: { name: string } };
  secrets: (region: string) => SecretsManagerClient;
  logger: Logger;
  sleep: Sleep;
  /** Milliseconds left in this invocation. */
  remainingMs: () => number;
}

interface CatchUpDeps {
  handover?: Pick<Handover, "waiting">;
  memory: RolloutMemory;
  logger: Logger;
  now: () => Date;
}

export function logRound(
  deps: { logger: Logger },
  round: number,
  observation: Observation,
  current: Plan,
  result: ActResult,
) {
  deps.logger.info("reconcile round", {
    round,
    scope: observation.scope,
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
}

/**
 * Polls the lagging regions with capped backoff until they serve `versionId`, time runs out, or the
 * run hands the queue over to waiting triggers.
 */
export async function waitForReplicaSync(
  deps: ReplicaWaitDeps,
  versionId: string,
  regions: string[],
  handOver: () => Promise<boolean>,
): Promise<"synced" | "out-of-time" | "handed-over"> {
  let behind = [...regions];
  for (let attempt = 0; behind.length > 0; attempt++) {
    // Replication usually lands within seconds: poll briskly at first (every ≤ 250 ms, well inside
    // DescribeSecret quotas), then back off for a replica that is slow.
    const delay = backoffDelay(attempt, 100, attempt < 40 ? 250 : 2_000);
    if (deps.remainingMs() < DEADLINE_MARGIN_MS + delay) return "out-of-time";
    if (await handOver()) return "handed-over";
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
  return "synced";
}

/**
 * How old a look may be for later rounds of its run to act on it without looking again: to carry
 * on with its plan's deferred refresh starts (plan.ts continueStarts), and to plan the lagging
 * regions' groups once their replicas serve the version (lookAfterSync). At 20 × 1,000 in the
 * sandbox, looking again at each round's 100 groups took about 0.9 s of the round's 1 s (the starts
 * themselves about 0.1 s) and 900 more DescribeInstanceRefreshes; all the rounds of one look take
 * a few seconds. Older than this, the groups are looked at again first.
 */
export const ONE_LOOK_MS = 30_000;

/**
 * What a round plans once the lagging regions serve `versionId` (waitForReplicaSync): their groups
 * as the run's last look saw them (`view`, folded with what the run wrote), with those replicas in
 * sync as of now — instead of looking at the groups again (at 20 × 1,000, 950 groups and about
 * 0.5 s). Only a look (not a poll) under ONE_LOOK_MS old that saw every one of the groups, and
 * only while the primary still holds `versionId` as AWSCURRENT (one DescribeSecret: a rotation may
 * have moved it during the wait). Undefined otherwise: the groups are looked at again.
 *
 * Safe because it is partial (plan.ts PARTIAL_ACTIONS: it revokes nothing, records nothing fleet
 * wide) and `now` is when the replicas were seen in sync, which is the sync time a plan records: an
 * instance launched after the look and before that is taken as holding the old token, and the full
 * observation before any revocation sees it. What may have changed in the groups since the look
 * is what a fresh look could miss a moment later too (a refresh AWS refuses as in progress, a
 * command to an instance gone), which act and the next observation already handle.
 */
export async function lookAfterSync(
  deps: {
    config: { secret: { arn: string; region: string } };
    secrets: (region: string) => SecretsManagerClient;
    now: () => Date;
    logger: Logger;
  },
  look: Observation,
  view: Observation,
  groups: readonly TargetGroup[],
  versionId: string,
): Promise<Observation | undefined> {
  if (
    groups.length === 0 ||
    look.scope === "poll" ||
    deps.now().getTime() - look.startedAt.getTime() >= ONE_LOOK_MS
  )
    return undefined;
  const wanted = new Set(groups.map(groupKey));
  // Every one of the groups seen, none behind an error (a look that could not see a group is none).
  const seen = look.targets.filter((t) => wanted.has(groupKey(t)) && t.error === undefined);
  if (seen.length !== wanted.size) return undefined;
  const { secret } = deps.config;
  const state = await describeSecret(deps.secrets(secret.region), secret.arn).catch((error: unknown) => {
    deps.logger.debug("could not read the primary after the replica wait; looking again", {
      error: describeError(error),
    });
    return undefined;
  });
  if (state?.current !== versionId) return undefined;
  const regions = new Set(groups.map((g) => g.region));
  deps.logger.info("replicas in sync; planning their groups on this run's last look", {
    regions: [...regions],
  });
  return {
    ...view,
    scope: "partial",
    startedAt: look.startedAt,
    now: deps.now(),
    secret: {
      ...view.secret,
      current: state.current,
      pending: state.pending,
      lastRotatedAt: state.lastRotatedDate,
    },
    replicas: [...regions].map((region) => {
      const status = state.replication.find((r) => r.region === region);
      return {
        region,
        current: versionId,
        replicationStatus: status?.status,
        statusMessage: status?.message,
        error: undefined,
      };
    }),
    targets: view.targets.filter((t) => wanted.has(groupKey(t))),
    stacks: [],
    tokens: [],
    agents: undefined,
    // The plan that waited for these replicas found the version ours: only a managed version's plan waits.
    managedVersion: versionId,
  };
}

/** A catch-up observation (scope.ts catchUp), when the queue holds at least the reports still to come. */
export async function caughtUp(deps: CatchUpDeps): Promise<RunScope | undefined> {
  if (!deps.handover || !deps.memory.catchUpDue(deps.now(), CATCH_UP_INTERVAL_MS, MAX_CATCH_UPS))
    return undefined;
  try {
    const waiting = await deps.handover.waiting();
    const scope = catchUp(deps.memory.recollect(), waiting);
    if (!scope) {
      deps.logger.debug("no catch-up yet", { waiting });
      return undefined;
    }
    deps.memory.noteCatchUp();
    deps.logger.info("catching up with the reports waiting in the queue", { reason: scope.reason });
    return scope;
  } catch (error) {
    deps.logger.debug("could not count the waiting triggers; no catch-up", { error: describeError(error) });
    return undefined;
  }
}

export function uniqueGroups(groups: TargetGroup[]): TargetGroup[] {
  return [...new Map(groups.map((g) => [groupKey(g), g])).values()];
}

/** Groups the observation could not see for a reason that may pass (throttling, a 5xx, a timeout). */
export function transientlyUnobserved(observation: Observation): TargetGroup[] {
  return observation.targets.filter((t) => t.error !== undefined && !t.error.definitive).map(targetGroupOf);
}

/** Regions where a planned SendCommand did not report a command: it may exist all the same. */
export function failedSendRegions(current: Plan, result: ActResult): string[] {
  const planned = new Map<string, number>();
  for (const a of current.actions)
    if (a.kind === "send-command") planned.set(a.region, (planned.get(a.region) ?? 0) + 1);
  for (const c of result.commandsSent) planned.set(c.region, (planned.get(c.region) ?? 0) - 1);
  return [...planned].filter(([, n]) => n > 0).map(([region]) => region);
}

/** The groups (of what the run has seen) holding an instance one of these commands was sent to. */
export function groupsOfCommands(
  view: Observation | undefined,
  sent: ReadonlyArray<{ region: string; instanceIds: readonly string[] }>,
): TargetGroup[] {
  const ids = new Set(sent.flatMap((c) => c.instanceIds.map((id) => `${c.region}:${id}`)));
  return (view?.targets ?? [])
    .filter((t) => t.members.some((m) => ids.has(`${t.region}:${m.instanceId}`)))
    .map(targetGroupOf);
}
