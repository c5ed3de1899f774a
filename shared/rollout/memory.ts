import type { TargetGroup } from "../lib/config";
import { DONE_PHASES, groupKey } from "./model";
import type { Observation, Plan, RefreshObservation } from "./types";

/**
 * What the last full observation in this container concluded, for the pure scope decisions
 * (scope.ts). Only the plan's own summary: nothing here is trusted over what AWS reports.
 */
export interface Recollection {
  versionId: string;
  /** When that full observation began. */
  fullStartedAt: Date;
  /** Whether the version had a token made by this project. */
  managed: boolean;
  /** The anchor group it found (where the rollout and emergency tags live). */
  anchor: TargetGroup | undefined;
  /** `region:group` of every target not done then, minus those a later partial plan found done. */
  notDone: string[];
  /** An emergency's leaked token was still valid and not being revoked (a region was behind). */
  leakedOpen: boolean;
  /** `region:group` → our refresh for this version, as observed or as this container started it. */
  refreshIds: Record<string, string>;
  /**
   * `region:group` of groups not done whose own refresh (the id above) reported success since:
   * not verified yet. Only an observation verifies them (scope.ts), and only a full one decides.
   */
  reported: string[];
  /**
   * `region:group` → our refresh for this version that a look found succeeded, the group done: a
   * report of that refresh's success tells nothing new (scope.ts), however late it arrives.
   */
  doneRefreshIds: Record<string, string>;
}

/** What a run that handed over left to do: its continuation's id, the version, the groups. */
export interface Suspension {
  id: string;
  versionId: string;
  groups: TargetGroup[];
  /** Groups whose refresh is still to start after those: later rounds of the continuation look at them. */
  startsLeft?: TargetGroup[];
}

/**
 * Refresh statuses that never change again (API reference: InstanceRefresh, Status; `Baking` is
 * followed by `Successful`).
 */
const FINAL_REFRESH = new Set(["Successful", "Failed", "Cancelled", "RollbackSuccessful", "RollbackFailed"]);
/** Bounds the caches: far above one deployment's groups, so a long-lived container cannot grow without end. */
const MAX_ENTRIES = 10_000;

/**
 * What a warm container remembers between runs, so that a run observes only what can have changed.
 * It holds immutable facts AWS reported (a version's creation time, a refresh in a final status) and
 * the summary of the last full observation. Losing it (a cold container) costs calls, never a
 * different decision: where a warm container relies on it, a cold one observes in full. Built once
 * per container with the other dependencies; never module state.
 */
export class RolloutMemory {
  private readonly createdAt = new Map<string, Date>();
  private readonly finalRefreshes = new Map<string, RefreshObservation>();
  private last: Recollection | undefined;
  private suspended: Suspension | undefined;
  private catchUps: { versionId: string; askedAt: Date; made: number } | undefined;

  /** A version's CreatedDate, if a ListSecretVersionIds of this container reported it. */
  versionCreatedAt(versionId: string): Date | undefined {
    return this.createdAt.get(versionId);
  }

  rememberCreatedAt(createdAt: Record<string, Date>): void {
    for (const [id, at] of Object.entries(createdAt)) bounded(this.createdAt).set(id, at);
  }

  /** A refresh already seen in a final status: what DescribeInstanceRefreshes would report again. */
  finalRefresh(region: string, groupName: string, refreshId: string): RefreshObservation | undefined {
    return this.finalRefreshes.get(`${region}:${groupName}:${refreshId}`);
  }

  rememberRefreshes(region: string, groupName: string, refreshes: RefreshObservation[]): void {
    for (const r of refreshes) {
      if (FINAL_REFRESH.has(r.status)) bounded(this.finalRefreshes).set(`${region}:${groupName}:${r.id}`, r);
    }
  }

  recollect(): Recollection | undefined {
    return (
      this.last && {
        ...this.last,
        notDone: [...this.last.notDone],
        refreshIds: { ...this.last.refreshIds },
        reported: [...this.last.reported],
        doneRefreshIds: { ...this.last.doneRefreshIds },
      }
    );
  }

  /** Folds a plan into the summary: a full one replaces it, a partial one updates its groups. */
  afterPlan(obs: Observation, plan: Plan): void {
    if (!plan.versionId) return;
    const notDone = plan.targets.filter((t) => !DONE_PHASES.has(t.phase)).map(groupKey);
    if (obs.scope === "full") {
      const anchor = obs.anchor;
      this.last = {
        versionId: plan.versionId,
        fullStartedAt: obs.startedAt,
        // The rule plan() applies to a full observation: the version is ours if we made a token for it.
        managed: obs.tokens.some((t) => t.versionId === plan.versionId),
        anchor,
        notDone,
        refreshIds: refreshIdsOf(plan, notDone),
        reported: [],
        doneRefreshIds: doneRefreshIdsOf(plan),
        leakedOpen:
          obs.emergency?.versionId === plan.versionId &&
          obs.tokens.some((t) => t.versionId === obs.emergency?.leakedVersionId) &&
          !plan.actions.some((a) => a.kind === "revoke" && a.versionId === obs.emergency?.leakedVersionId),
      };
      return;
    }
    if (this.last?.versionId !== plan.versionId) return;
    const seen = new Set(plan.targets.map(groupKey));
    this.last.notDone = [...this.last.notDone.filter((k) => !seen.has(k)), ...notDone];
    // What this observation saw replaces what was reported of those groups.
    this.last.reported = this.last.reported.filter((k) => !seen.has(k));
    this.last.refreshIds = { ...this.last.refreshIds, ...refreshIdsOf(plan, notDone) };
    this.last.doneRefreshIds = { ...this.last.doneRefreshIds, ...doneRefreshIdsOf(plan) };
  }

  /**
   * Whether a run may ask the trigger queue how much waits behind it for a catch-up (scope.ts
   * catchUp): at most once per `intervalMs`, and at most `max` catch-ups per version, so a burst of
   * reports costs a few questions and an early guess is not repeated for ever. Asking counts.
   */
  catchUpDue(now: Date, intervalMs: number, max: number): boolean {
    const versionId = this.last?.versionId;
    if (!versionId) return false;
    const asked = this.catchUps?.versionId === versionId ? this.catchUps : undefined;
    if (asked && now.getTime() - asked.askedAt.getTime() < intervalMs) return false;
    if (asked && asked.made >= max) return false;
    this.catchUps = { versionId, askedAt: now, made: asked?.made ?? 0 };
    return true;
  }

  /** A catch-up observation is being made (counted against catchUpDue's `max`). */
  noteCatchUp(): void {
    if (this.catchUps) this.catchUps.made++;
  }

  /** Refreshes this container started for the version of the summary. */
  noteStarted(
    versionId: string | undefined,
    started: ReadonlyArray<TargetGroup & { refreshId: string }>,
  ): void {
    if (!this.last || this.last.versionId !== versionId) return;
    for (const s of started) this.last.refreshIds[groupKey(s)] = s.refreshId;
  }

  /** Groups whose own refresh reported success (scope.ts decided which); a later look verifies them. */
  noteReported(keys: readonly string[]): void {
    if (!this.last || keys.length === 0) return;
    const notDone = new Set(this.last.notDone);
    this.last.reported = [...new Set([...this.last.reported, ...keys.filter((k) => notDone.has(k))])];
  }

  /** Forgets the summary (not the immutable facts): the next run observes in full. */
  forget(): void {
    this.last = undefined;
    this.suspended = undefined;
  }

  /** A run handed the queue over while these groups had work left (handover.ts); the latest wins. */
  suspend(suspension: Suspension): void {
    this.suspended = copyOf(suspension);
  }

  /** The suspension a continuation names, if this container made it. */
  suspension(id: string): Suspension | undefined {
    return this.suspended?.id === id ? copyOf(this.suspended) : undefined;
  }
}

/** A suspension no caller can change through the memory (or the memory through the caller). */
function copyOf(s: Suspension): Suspension {
  return { ...s, groups: [...s.groups], ...(s.startsLeft ? { startsLeft: [...s.startsLeft] } : {}) };
}

function refreshIdsOf(plan: Plan, notDone: readonly string[]): Record<string, string> {
  const open = new Set(notDone);
  const ids: Record<string, string> = {};
  for (const t of plan.targets) if (t.refreshId && open.has(groupKey(t))) ids[groupKey(t)] = t.refreshId;
  return ids;
}

/** Our refresh of each group the plan found done: the one seen Successful, or the one our tag names where the instances alone settled it. */
function doneRefreshIdsOf(plan: Plan): Record<string, string> {
  const ids: Record<string, string> = {};
  for (const t of plan.targets) if (t.refreshId && DONE_PHASES.has(t.phase)) ids[groupKey(t)] = t.refreshId;
  return ids;
}

function bounded<K, V>(map: Map<K, V>): Map<K, V> {
  if (map.size >= MAX_ENTRIES) {
    const oldest = map.keys().next();
    if (!oldest.done) map.delete(oldest.value);
  }
  return map;
}
