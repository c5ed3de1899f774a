import { SAFE_INSTANCE_STATES } from "./model";
import type { InstanceObservation, InstanceState, InstanceStatus } from "./types";

/**
 * The per-instance ledger: the ground for revocation. An instance no longer needs any old token once
 * it booted after its region served the current version (EC2 LaunchTime after the recorded sync
 * time: the Elastic CI Stack reads the token once, at boot, after launch), or the install document
 * confirmed the current version in its cfg after its boot had finished, or it is leaving the group.
 * Everything else is pending, computed from the group's instance list — never from commands alone,
 * so an instance no command ever reached is still counted.
 */
export interface LedgerSettings {
  /** Send the install document (in-place strategy, or any strategy in an emergency). */
  inPlace: boolean;
  retrySeconds: number;
  fallbackAfterSeconds: number;
  bootGraceSeconds: number;
  /** EC2's clock and ours may differ a little: a launch this close to the sync time does not count as after it. */
  clockSkewMs: number;
}

const LEAVING = /^(Terminating|Terminated)/;
const RUNNING_INVOCATION = new Set(["Pending", "InProgress", "Delayed", "Cancelling"]);

export function instanceLedger(
  members: readonly InstanceObservation[],
  versionId: string,
  syncedAt: Date,
  now: Date,
  s: LedgerSettings,
): InstanceStatus[] {
  const syncAge = (now.getTime() - syncedAt.getTime()) / 1000;
  return members.map((m) => {
    const [state, detail] = stateOf(m, versionId, syncedAt, now, s);
    const safe = SAFE_INSTANCE_STATES.has(state);
    const fallbackDue =
      s.inPlace && !safe && state !== "in-flight" && state !== "to-send" && syncAge > s.fallbackAfterSeconds;
    return { instanceId: m.instanceId, state, safe, detail, fallbackDue };
  });
}

/**
 * Safe whatever any refresh or command reports: leaving the group, or launched after its region
 * served the current version (observe.ts reads no refresh history for a group of such instances).
 */
export function safeByLaunch(m: InstanceObservation, syncedAt: Date, clockSkewMs: number): boolean {
  return LEAVING.test(m.lifecycleState) || bootedAfter(m, syncedAt, clockSkewMs);
}

function bootedAfter(m: InstanceObservation, syncedAt: Date, clockSkewMs: number): boolean {
  return m.launchedAt !== undefined && m.launchedAt.getTime() > syncedAt.getTime() + clockSkewMs;
}

function stateOf(
  m: InstanceObservation,
  versionId: string,
  syncedAt: Date,
  now: Date,
  s: LedgerSettings,
): [InstanceState, string] {
  if (LEAVING.test(m.lifecycleState)) return ["gone", `leaving the group (${m.lifecycleState})`];
  if (m.launchedAt === undefined) return ["unknown", "EC2 reports no launch time for it"];
  if (bootedAfter(m, syncedAt, s.clockSkewMs)) {
    return ["booted-after-sync", "launched after its region served the new token"];
  }
  const confirmation = m.invocations.find(
    (i) =>
      i.status === "Success" &&
      (i.result?.result === "installed" || i.result?.result === "unchanged") &&
      i.result.version === versionId,
  );
  if (confirmation) return ["confirmed", `confirmed in place by command ${confirmation.commandId}`];
  if (!s.inPlace) return ["awaiting-refresh", "launched before its region served the new token"];

  const ageOf = (d: Date) => (now.getTime() - d.getTime()) / 1000;
  const online = m.ssmPing === "Online";
  const latest = m.invocations[0];
  if (latest) {
    const retryDue = ageOf(latest.requestedAt) >= s.retrySeconds;
    if (RUNNING_INVOCATION.has(latest.status)) return ["in-flight", `command ${latest.status}`];
    // Listed by its command but no invocation visible yet (Run Command shows them after a delay).
    if (latest.status === "Sent" && !retryDue) return ["in-flight", "command sent"];
    const result = latest.result?.result;
    if (result === "foreign-token") {
      return ["foreign-token", "its cfg holds a token this secret never held; left alone"];
    }
    if (result === "refused") {
      return ["refused", `the document refused its cfg (${latest.result?.reason ?? "not a regular file"})`];
    }
    if (result === "boot-in-progress") {
      if (ageOf(m.launchedAt) > s.bootGraceSeconds) {
        return ["unreachable", `still booting ${Math.round(ageOf(m.launchedAt))} s after launch`];
      }
      if (!retryDue) return ["boot-in-progress", "its boot has not finished; asked again later"];
    } else if (!retryDue) {
      return ["retry-wait", describeFailure(latest.status, latest.statusDetails, result)];
    }
  }
  if (!online) return ["unreachable", `SSM agent ${m.ssmPing ?? "not reported"}`];
  return ["to-send", latest ? "asking again" : "ready for the install command"];
}

function describeFailure(status: string, details: string | undefined, result: string | undefined): string {
  const parts = [`last command ${status}`];
  if (details && details !== status) parts.push(details);
  if (result) parts.push(`result ${result}`);
  return parts.join(", ");
}

/** Whether every instance of the ledger is safe for the current version. */
export const allSafe = (instances: readonly InstanceStatus[]): boolean => instances.every((i) => i.safe);
