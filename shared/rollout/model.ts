import type { InstanceState, TargetPhase, TargetStatus } from "./types";

/**
 * The rollout's vocabulary, defined once: which phases count as done, which need an operator, which
 * are still moving. plan(), status, the CLI's `rotate` and the sandbox all read these.
 */

/** Just the group's name and region, from anything that carries them (an observation, a status). */
export const targetGroupOf = (t: { region: string; groupName: string }) => ({
  region: t.region,
  groupName: t.groupName,
});

/** How a group is named across regions: `region:group`. */
export const groupKey = (t: { region: string; groupName: string }): string => `${t.region}:${t.groupName}`;

/** The inverse of groupKey: a region has no colon, so the first one ends it. */
export const groupOfKey = (key: string): { region: string; groupName: string } => {
  const at = key.indexOf(":");
  return { region: key.slice(0, at), groupName: key.slice(at + 1) };
};

/** Every instance of the group is safe for the current version (or the group has none). */
export const DONE_PHASES: ReadonlySet<TargetPhase> = new Set(["refreshed", "updated", "empty"]);
/** Nothing will change without an operator (or the configured fallback). */
export const BLOCKED_PHASES: ReadonlySet<TargetPhase> = new Set([
  "failed",
  "partial",
  "missing",
  "unknown",
  "blocked",
]);
/** Phases in which a refresh of ours or someone else's is running or about to be started. */
export const REFRESH_PHASES: ReadonlySet<TargetPhase> = new Set([
  "start-refresh",
  "refreshing",
  "waiting-for-other-refresh",
]);

export const SAFE_INSTANCE_STATES: ReadonlySet<InstanceState> = new Set([
  "booted-after-sync",
  "confirmed",
  "gone",
]);

/** Counts of a group's instances by where they stand, for status and the CLI's progress view. */
export interface InstanceCounts {
  total: number;
  safe: number;
  /** Still to be updated (commands on their way, to send, or waiting for a refresh). */
  pending: number;
  /** Not reachable or refused: the fallback or an operator must act. */
  unreachable: number;
}

const UNREACHABLE: ReadonlySet<InstanceState> = new Set([
  "unreachable",
  "foreign-token",
  "refused",
  "unknown",
]);

export function instanceCounts(t: Pick<TargetStatus, "instances">): InstanceCounts {
  const counts: InstanceCounts = { total: t.instances.length, safe: 0, pending: 0, unreachable: 0 };
  for (const i of t.instances) {
    if (i.safe) counts.safe++;
    else if (UNREACHABLE.has(i.state) || i.fallbackDue) counts.unreachable++;
    else counts.pending++;
  }
  return counts;
}
