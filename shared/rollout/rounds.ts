import type { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { describeError } from "../lib/errors";
import type { Logger } from "../lib/log";
import { backoffDelay, type Sleep } from "../lib/sleep";
import type { ActResult } from "./act";
import { instanceCounts } from "./model";
import { replicaCurrentVersion } from "./observe";
import type { Observation, Plan } from "./types";

/**
 * What a reconcile run does around its rounds that is not a decision: the log line of each round,
 * and the wait for lagging replicas (reconcile.ts).
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
