import { type Color, iso } from "../../../shared/lib/terminal";
import { retryRefreshAdvice } from "../../../shared/rollout/markers";
import type { StatusReport } from "../../../shared/rollout/status";

/**
 * The operator's advice, written once: what blocks a rollout and what to do about it, why `status`
 * exits 3, and the one-line state of the rollout. Every view (status, rotate, preflight, the
 * sandbox) quotes these, so an operator reads the same words wherever they look.
 */

/** Why `status` exits 3: the rollout needs an operator, or rotation is overdue. Empty when fine. */
export function statusAttention(report: StatusReport): string[] {
  const out: string[] = [];
  if (report.secret.overdue) {
    out.push(
      `rotation overdue: the scheduled rotation was due ${iso(report.secret.nextRotationAt) ?? "?"}; check the rotate-token function's logs and the secret's rotation configuration`,
    );
  }
  if (report.waitingFor.includes("operator")) out.push(...blockedAdvice(report).map((b) => `blocked: ${b}`));
  return out;
}

/** What blocks the rollout and what to do about each, one line per problem. */
export function blockedAdvice(report: StatusReport): string[] {
  const out: string[] = [];
  if (!report.secret.currentVersionId) {
    out.push(
      "the secret has no AWSCURRENT version: restore one (aws secretsmanager update-secret-version-stage)",
    );
  }
  for (const r of report.regions) {
    if (r.state !== "failed") continue;
    out.push(
      `replica ${r.region} does not serve the current version (${r.detail ?? "replication failed"}): check or re-create the replica (aws secretsmanager describe-secret --region ${r.region} --secret-id ${report.secret.name}); reconcile continues on its own once it serves the version`,
    );
  }
  for (const g of report.groups) {
    const where = `${g.region}:${g.groupName}`;
    if (g.phase === "failed") {
      out.push(
        `${where}: refresh ${g.refreshId ?? "?"} ${g.detail}: fix the cause (see the group's activity history), then ${retryRefreshAdvice(g.region, g.groupName)}`,
      );
    } else if (g.phase === "partial") {
      out.push(
        `${where}: refresh ${g.refreshId ?? "?"} ${g.detail}: set REFRESH_SCALE_IN_PROTECTED_INSTANCES to Wait or Refresh, then ${retryRefreshAdvice(g.region, g.groupName)}`,
      );
    } else if (g.phase === "blocked") {
      const stuck = g.waiting.map((w) => `${w.instanceId} (${w.detail})`).join(", ");
      out.push(
        `${where}: ${g.detail}: ${stuck || "see the group's instances"}; bring their SSM agent online, or replace them (aws autoscaling terminate-instance-in-auto-scaling-group --no-should-decrement-desired-capacity --instance-id …), or set IN_PLACE_FALLBACK`,
      );
    } else if (g.phase === "missing") {
      out.push(
        `${where}: group not found: fix TARGET_GROUPS, or target the Elastic CI Stack by name (TARGET_STACKS), and redeploy`,
      );
    } else if (g.phase === "unknown") {
      out.push(`${where}: ${g.detail}: check the reconcile role's Auto Scaling permissions in ${g.region}`);
    }
  }
  return out;
}

/** The rollout in one line, with the color it is shown in. */
export function rolloutState(report: StatusReport): { text: string; color: Color } {
  if (report.waitingFor.includes("operator")) return { text: "BLOCKED: needs an operator", color: "red" };
  if (report.complete) return { text: "rollout of the current version complete", color: "green" };
  if (report.waitingFor.length > 0)
    return { text: `in progress: waiting for ${report.waitingFor.join(", ")}`, color: "yellow" };
  return { text: "idle: nothing of this project's is being rolled out", color: "dim" };
}
