/**
 * The outcome of a sandbox run and its exit code, decided from the facts and the invariants'
 * results: a broken invariant fails the run, an incomplete rollout (blocked as designed, or not)
 * exits 2, a complete one that only rode out an injected fault exits 3. Pure.
 */
import {
  type FleetDelta,
  finalRotation,
  groupKey,
  type RunFacts,
  refreshFor,
  type TokenFacts,
} from "./facts";
import type { InvariantResult } from "./invariants";
import { rolloutComplete } from "./invariants";

export interface Outcome {
  exitCode: 0 | 1 | 2 | 3;
  kind: "complete" | "blocked" | "violations" | "degraded";
  /** The last line the sandbox prints. */
  headline: string;
}

export const EXIT = {
  complete: 0,
  /** A safety invariant was broken (or the sandbox itself could not run). */
  violation: 1,
  /** The rollout did not complete (a blocked or failed scenario), with every invariant intact. */
  incomplete: 2,
  /** Rolled out completely, every invariant intact, but only by riding out an injected fault. */
  degraded: 3,
  usage: 64,
  interrupted: 130,
} as const;

/** Why the final rotation did not roll out, in one clause. */
function whyIncomplete(facts: RunFacts): string {
  const last = finalRotation(facts);
  if (!last) return "no rotation ran";
  if (last.error) return `rotation ${last.index} failed: ${last.error}`;
  const failed = facts.groups.flatMap((g) => {
    const refresh = refreshFor(facts, last, g);
    return refresh && refresh.status !== "Successful" ? [`${groupKey(g)} (${refresh.status})`] : [];
  });
  if (failed.length > 0) return `the instance refresh of ${failed.join(", ")} did not succeed`;
  const outage = last.ssmOutage;
  if (outage && !outage.restoredAt) {
    return `instance ${outage.instanceId} (${outage.region}) cannot be reached by SSM Run Command, so its cfg still holds the previous token`;
  }
  return "the rollout did not finish in time";
}

export function decideOutcome(facts: RunFacts, results: InvariantResult[]): Outcome {
  const broken = results.filter((r) => !r.ok);
  if (broken.length > 0) {
    return {
      exitCode: EXIT.violation,
      kind: "violations",
      headline: `sandbox: FAILED — ${broken.length} safety invariant(s) broken: ${broken.map((r) => r.id).join(", ")} (exit 1)`,
    };
  }
  if (!rolloutComplete(facts)) {
    const designed = facts.expect === "blocked" ? "rollout blocked as designed" : "rollout did not complete";
    return {
      exitCode: EXIT.incomplete,
      kind: "blocked",
      headline: `sandbox: ${designed} — ${whyIncomplete(facts)}; the previous token stays valid, ${facts.alerts.length} alert(s) sent; no token was revoked early (exit 2)`,
    };
  }
  const instances = facts.groups.reduce((n, g) => n + g.instances, 0);
  const faults: string[] = [];
  if (facts.injected.replicaLagSeconds !== undefined) {
    const lags = facts.rotations.flatMap((r) =>
      r.promotedAt
        ? Object.values(r.replicasInSyncAt).map((t) => (t.getTime() - (r.promotedAt?.getTime() ?? 0)) / 1000)
        : [],
    );
    faults.push(
      `replicas lagged ${facts.injected.replicaLagSeconds} s (in sync at most ${Math.max(0, ...lags).toFixed(1)} s after promotion; no instance was asked to update before its region served the new token)`,
    );
  }
  if (facts.injected.buildkiteFlaky) {
    faults.push(
      `the Buildkite API failed ${facts.buildkiteRequests.failed} of ${facts.buildkiteRequests.total} requests and every idempotent call was retried (token creation never blindly)`,
    );
  }
  const n = totals(facts);
  const how =
    facts.strategy === "in-place"
      ? `in place (${n.replaced} instances replaced by the rollout, ${n.interrupted} jobs interrupted)`
      : `by instance refresh (${n.replaced} instances replaced by the rollout, ${n.interrupted} jobs interrupted)`;
  if (faults.length > 0) {
    return {
      exitCode: EXIT.degraded,
      kind: "degraded",
      headline: `sandbox: rolled out ${how} despite injected faults — ${faults.join("; ")}; ${facts.alerts.length} alert(s) sent; every safety invariant held (exit 3)`,
    };
  }
  return {
    exitCode: EXIT.complete,
    kind: "complete",
    headline: `sandbox: OK — ${facts.rotations.length} rotation(s) rolled out ${how} to ${instances} instances in ${facts.groups.length} stacks across ${1 + facts.replicaRegions.length} regions, ${n.failedRegistrations} failed registrations; every safety invariant held (exit 0)`,
  };
}

/** Fleet figures summed over every rotation. */
export function totals(facts: RunFacts) {
  const sum = (f: (d: FleetDelta) => number) =>
    facts.rotations.reduce((n, r) => n + (r.fleet ? f(r.fleet) : 0), 0);
  return {
    replaced: sum((d) => d.replacedByRollout),
    interrupted: sum((d) => d.jobsInterrupted),
    failedRegistrations: sum((d) => d.failedRegistrations),
  };
}

export interface SummaryNumbers {
  /** Over all rotations (per rotation: `RotationFacts.fleet`). */
  replacedByRollout: number;
  jobsInterrupted: number;
  failedRegistrations: number;
  failedWithRevokedToken: number;
  /** Successful registrations after start-up (agent restarts, new instances). */
  registrations: number;
  tokensCreated: number;
  tokensRevoked: number;
  managedValid: TokenFacts[];
  unmanagedValid: TokenFacts[];
  alerts: number;
}

export function summaryNumbers(facts: RunFacts, results: InvariantResult[]): SummaryNumbers {
  const since = facts.worldReadyAt.getTime();
  const during = facts.registrations.filter((r) => r.at.getTime() >= since);
  const n = totals(facts);
  return {
    replacedByRollout: n.replaced,
    jobsInterrupted: n.interrupted,
    failedRegistrations: during.filter((r) => !r.ok).length,
    failedWithRevokedToken:
      results.find((r) => r.id === "no-registration-with-revoked-token")?.explanations.length ?? 0,
    registrations: during.filter((r) => r.ok).length,
    tokensCreated: facts.tokens.filter((t) => t.versionId && t.createdAt.getTime() >= since).length,
    tokensRevoked: facts.tokens.filter((t) => t.revokedAt).length,
    managedValid: facts.tokens.filter((t) => t.versionId && t.valid),
    unmanagedValid: facts.tokens.filter((t) => !t.versionId && t.valid),
    alerts: facts.alerts.length,
  };
}
