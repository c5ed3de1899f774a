import type { ReconcileConfig } from "../lib/config";
import type { PlanSettings } from "./types";

/** What reconcile's plans are made with, from its configuration. */

/**
 * Refresh starts per round: at 1,000 groups the rest wait for the next round, between which the run
 * may hand the queue over (handover.ts). A round looks at its groups again and starts them, ten
 * calls per region in flight (act.ts). Measured at 20 × 1,000 in the sandbox (npm run bench --
 * scale): rounds of 200 held the queue about 5 s each and an event waited up to 11 s; rounds of
 * 100 hold it about 2.5 s, and no event waited over 7.3 s.
 */
export const MAX_STARTS_PER_ROUND = 100;

export function planSettings(config: ReconcileConfig): PlanSettings {
  return {
    primaryRegion: config.secret.region,
    maxStartsPerRound: MAX_STARTS_PER_ROUND,
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
