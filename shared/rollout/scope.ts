import type { TargetGroup } from "../lib/config";
import type { Recollection, Suspension } from "./memory";
import { BLOCKED_PHASES, DONE_PHASES, groupKey, groupOfKey } from "./model";
import type { Trigger } from "./trigger";
import type { Plan } from "./types";

/**
 * How much of the world a run observes (issue 11: the cost of a rotation is linear in the fleet).
 * - skip: every trigger happened before the last full observation began, so that observation
 *   already saw its effect (a burst of events costs nothing after the first full look);
 * - groups: only refresh events remain: observe the groups they name (and whether the secret moved);
 * - full: anything else (the secret's label moved, the schedule, the rotation, an operator).
 */
export type RunScope = (
  | { kind: "skip"; reason: string }
  | { kind: "full"; reason: string }
  | {
      kind: "groups";
      groups: TargetGroup[];
      reason: string;
      /** A resumed continuation's groups still to start after these (reconcile's later rounds). */
      startsLeft?: TargetGroup[];
    }
) & {
  /** `region:group` of groups whose own refresh this batch reported succeeded (memory notes them). */
  reported?: string[];
};

/**
 * EventBridge's `time` has whole seconds (the examples in
 * https://docs.aws.amazon.com/eventbridge/latest/ref/overiew-event-structure.html): an event stamped
 * 12:00:00 may have happened up to a second later.
 */
const EVENT_TIME_RESOLUTION_MS = 1_000;
/**
 * A partial run holds fleet-wide alerts (budget, unobservable, expiry) back for a full observation;
 * while other groups are still pending it asks for one at most this often, so a burst of them costs
 * one full look, not one each.
 */
export const ALERT_FULL_OBSERVATION_INTERVAL_MS = 60_000;

/** Whether the full observation that began at `fullStartedAt` had already seen the trigger's effect. */
export function seenBy(trigger: Trigger, fullStartedAt: Date | undefined, clockSkewMs: number): boolean {
  if (!trigger.at || !fullStartedAt) return false;
  // A continuation carries our own time to the millisecond; EventBridge's has whole seconds.
  const resolution = trigger.kind === "continuation" ? 0 : EVENT_TIME_RESOLUTION_MS;
  return trigger.at.getTime() + resolution + clockSkewMs <= fullStartedAt.getTime();
}

/**
 * AWSCURRENT moved to a version the last full observation already found current: that move is
 * what it saw (the rule matches AWSCURRENT only, and the queue keeps order, so a move away and
 * back would have been seen first). The rotation's own message and the label event both arrive
 * at a promotion; only the first costs a full observation.
 */
function alreadyCurrent(trigger: Trigger, memory: { versionId?: string } | undefined): boolean {
  return (
    trigger.kind === "secret-label-updated" &&
    trigger.versionId !== undefined &&
    trigger.versionId === memory?.versionId
  );
}

/**
 * Reported successes verified together once this many wait (a partial look at 100 groups costs
 * about the same per region as one at 10: a DescribeAutoScalingGroups page, a DescribeInstances, a
 * DescribeSecret), so that the full observation at the end has few refreshes left to read.
 */
export const VERIFY_REPORTED_AT = 100;

/** What a warm container's memory offers scopeOf; a cold one passes the anchor's time only. */
type ScopeMemory = Pick<Recollection, "fullStartedAt"> &
  Partial<Pick<Recollection, "versionId" | "notDone" | "refreshIds" | "reported" | "doneRefreshIds">>;

/**
 * Our own refresh, of a group not done at the last full observation, reported success: nothing
 * to observe for it yet while other groups are still to report. A partial look at it would only
 * find it done; the decisions its success can lead to (revoking, recording completion) wait for a
 * full observation anyway, which reads every group's refresh again. So these triggers are noted
 * (memory.reported) and cost no call, until every group not done has reported (then the full
 * observation runs) or VERIFY_REPORTED_AT of them wait (then they are looked at together). A
 * failure, a cancel, a rollback, or a refresh that is not the one we know, is looked at at once.
 */
function reportsSuccess(
  t: Extract<Trigger, { kind: "instance-refresh" }>,
  memory: ScopeMemory | undefined,
): boolean {
  if (t.event !== "Succeeded" || !memory?.refreshIds) return false;
  const key = groupKey({ region: t.region, groupName: t.group });
  return memory.refreshIds[key] === t.refreshId && (memory.notDone ?? []).includes(key);
}

/**
 * The success of our refresh of a group a look already found done with that refresh: the look saw
 * the final status the event reports (a final status never changes), so it costs nothing. Reports
 * queued behind a catch-up look (catchUp) arrive this way.
 */
function alreadySeenDone(t: Trigger, memory: ScopeMemory | undefined): boolean {
  if (t.kind !== "instance-refresh" || t.event !== "Succeeded") return false;
  const key = groupKey({ region: t.region, groupName: t.group });
  return memory?.doneRefreshIds?.[key] === t.refreshId && !(memory.notDone ?? []).includes(key);
}

/** Groups not done whose report has not come (yet). */
function stillToReport(notDone: readonly string[], reported: ReadonlySet<string>): string[] {
  return notDone.filter((k) => !reported.has(k));
}

/**
 * A continuation this container suspended resumes with its groups, like refresh events for them
 * (a continuation from elsewhere, or whose suspension a later one replaced, observes in full).
 */
export function scopeOf(
  triggers: readonly Trigger[],
  memory: ScopeMemory | undefined,
  clockSkewMs: number,
  suspension?: (id: string) => Suspension | undefined,
): RunScope {
  if (triggers.length === 0) return { kind: "full", reason: "a direct call" };
  const unseen = triggers.filter(
    (t) =>
      !seenBy(t, memory?.fullStartedAt, clockSkewMs) &&
      !alreadyCurrent(t, memory) &&
      !alreadySeenDone(t, memory),
  );
  if (unseen.length === 0) {
    return {
      kind: "skip",
      reason: `the last full observation (began ${memory?.fullStartedAt.toISOString()}) saw every trigger`,
    };
  }
  // Our own successes (noted, not observed) apart from the triggers that are looked at.
  const reported: string[] = [];
  const live: Trigger[] = [];
  for (const t of unseen) {
    if (t.kind === "instance-refresh" && reportsSuccess(t, memory))
      reported.push(groupKey({ region: t.region, groupName: t.group }));
    else live.push(t);
  }
  const allReported = new Set([...(memory?.reported ?? []), ...reported]);
  const unreported = stillToReport(memory?.notDone ?? [], allReported);
  if (reported.length > 0 && unreported.length === 0) {
    return {
      kind: "full",
      reason: "every group not done reported its refresh succeeded: the rollout may be complete",
      reported,
    };
  }
  // Waiting reports verified together: the groups scope below looks at them with the live triggers'.
  const verify =
    reported.length > 0 && allReported.size >= VERIFY_REPORTED_AT ? [...allReported].map(groupOfKey) : [];
  if (live.length === 0 && verify.length === 0) {
    return {
      kind: "skip",
      reason: `${reported.length} refresh(es) of ours succeeded; ${unreported.length} group(s) still to report before a look verifies them`,
      reported,
    };
  }
  const resumed = (t: Trigger) => {
    const s = t.kind === "continuation" ? suspension?.(t.id) : undefined;
    return s && s.groups.length > 0 ? s : undefined;
  };
  const other = live.find((t) => t.kind !== "instance-refresh" && !resumed(t));
  if (other) return { kind: "full", reason: `a ${other.kind} trigger`, reported };
  const groups = new Map<string, TargetGroup>();
  const startsLeft = new Map<string, TargetGroup>();
  for (const g of verify) groups.set(groupKey(g), g);
  for (const t of live) {
    if (t.kind === "instance-refresh")
      groups.set(groupKey({ region: t.region, groupName: t.group }), {
        region: t.region,
        groupName: t.group,
      });
    for (const g of resumed(t)?.groups ?? []) groups.set(groupKey(g), g);
    for (const g of resumed(t)?.startsLeft ?? []) startsLeft.set(groupKey(g), g);
  }
  for (const key of groups.keys()) startsLeft.delete(key);
  return {
    kind: "groups",
    groups: [...groups.values()],
    reason:
      verify.length > 0
        ? `${verify.length} reported refresh success(es) to verify, ${live.length} other trigger(s)`
        : `${live.length} refresh event(s) or continuation(s)`,
    reported,
    ...(startsLeft.size > 0 ? { startsLeft: [...startsLeft.values()] } : {}),
  };
}

/** How often a run that only noted reports may ask the queue whether the rest are waiting (catchUp). */
export const CATCH_UP_INTERVAL_MS = 250;
/** Catch-up observations per version in one container: a guess that was early is not repeated for ever. */
export const MAX_CATCH_UPS = 2;

/**
 * Catching up with the queue. Reports of our refreshes are noted one batch at a time, ten per
 * invocation (the FIFO event source's limit), so at a thousand groups the last report reaches a run
 * seconds after the last refresh ended, behind the others. When the triggers waiting behind this
 * run are at least as many as the groups still to report (ApproximateNumberOfMessages), and every
 * one of those groups has a refresh of ours (a group still to start has no report to come), those
 * refreshes have probably all ended: the run observes in full now (the observation that may
 * revoke) instead of after the drain. The reports still queued then cost nothing (older than that
 * observation, or alreadySeenDone). A guess that was early costs one full look, which reads again
 * only the refreshes not yet seen in a final status; what the look finds is what counts, never the
 * count of waiting triggers.
 */
export function catchUp(
  memory: Pick<Recollection, "notDone" | "reported" | "refreshIds"> | undefined,
  waiting: number,
): Extract<RunScope, { kind: "full" }> | undefined {
  if (!memory) return undefined;
  const unreported = stillToReport(memory.notDone, new Set(memory.reported));
  if (unreported.length === 0 || waiting < unreported.length) return undefined;
  if (unreported.some((k) => memory.refreshIds[k] === undefined)) return undefined;
  return {
    kind: "full",
    reason: `${waiting} trigger(s) wait behind this run for ${unreported.length} group(s) still to report: observing now`,
  };
}

/**
 * After a partial plan: why the run must now observe in full (only a full observation may revoke,
 * alert or record completion), or undefined to stop here. A cold container (no recollection, or one
 * of another version) always goes on to a full observation: memory saves calls, it never decides.
 */
export function needsFullObservation(
  plan: Plan,
  memory: Recollection | undefined,
  now: Date,
): string | undefined {
  if (plan.escalate) return plan.escalate;
  if (!plan.versionId) return undefined;
  if (!memory || memory.versionId !== plan.versionId) {
    return `no full observation of version ${plan.versionId} in this container yet`;
  }
  if (memory.leakedOpen && plan.regionsBehind.length === 0) {
    return "an emergency's leaked token may now be revoked";
  }
  const here = new Set(plan.targets.map(groupKey));
  // A group that reported its refresh succeeded is not waited for: the full observation verifies it.
  const reported = new Set(memory.reported);
  const othersPending = memory.notDone.filter((k) => !here.has(k) && !reported.has(k));
  const settled = plan.targets.every((t) => DONE_PHASES.has(t.phase) || BLOCKED_PHASES.has(t.phase));
  if (othersPending.length === 0 && settled) {
    return "every other group was done at the last full observation: the rollout may be complete";
  }
  if (
    plan.deferredAlerts > 0 &&
    now.getTime() - memory.fullStartedAt.getTime() >= ALERT_FULL_OBSERVATION_INTERVAL_MS
  ) {
    return `${plan.deferredAlerts} alert(s) to send`;
  }
  return undefined;
}
