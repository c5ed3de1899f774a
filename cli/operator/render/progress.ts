import { type Color, iso, painter, type RenderOptions, short, wrap } from "../../../shared/lib/terminal";
import { BLOCKED_PHASES, DONE_PHASES } from "../../../shared/rollout/model";
import type { StatusReport } from "../../../shared/rollout/status";
import type { TargetPhase } from "../../../shared/rollout/types";
import { rolloutState } from "./advice";

/**
 * The progress view of a rollout: a bar per group, the compact live view (`rotate`, the sandbox)
 * and the one-line summary for output that is not a terminal. Pure functions of the report.
 */

export interface ProgressOptions extends RenderOptions {
  /**
   * An earlier report of the same rollout (e.g. the first one seen when following started): the
   * managed tokens valid then and gone now are counted as revoked. Without it, revocations cannot
   * be counted (Buildkite does not list revoked tokens).
   */
  baseline?: StatusReport;
}

/** Text progress bar: `[#####-----]`. */
export function bar(percent: number | undefined, width = 10): string {
  const p = Math.max(0, Math.min(100, percent ?? 0));
  const filled = Math.round((p / 100) * width);
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}]`;
}

type Group = StatusReport["groups"][number];
const REFRESH_PROGRESS = new Set<TargetPhase>([
  "refreshing",
  "refreshed",
  "failed",
  "partial",
  "waiting-for-other-refresh",
]);
const IN_PLACE_PROGRESS = new Set<TargetPhase>(["updating", "updated", "blocked"]);

/** Whether a group's phase has a progress to show (a refresh, an in-place update, an empty group). */
export const hasProgress = (phase: TargetPhase): boolean =>
  REFRESH_PROGRESS.has(phase) || IN_PLACE_PROGRESS.has(phase) || phase === "empty";

/**
 * The progress of one group for the current version. In place, by instance:
 * `[######----] 3/5 safe, 1 pending, 1 unreachable`; by refresh: `[#####-----]  50% InProgress`.
 */
export function groupProgress(g: Group): string {
  if (g.phase === "empty") return `${bar(100)} 100% empty`;
  if (IN_PLACE_PROGRESS.has(g.phase)) {
    const p = g.progress;
    const pct = p.total === 0 ? 100 : (p.safe / p.total) * 100;
    const extra = [
      p.pending > 0 ? `${p.pending} pending` : "",
      p.unreachable > 0 ? `${p.unreachable} unreachable` : "",
    ]
      .filter(Boolean)
      .join(", ");
    return `${bar(pct)} ${p.safe}/${p.total} safe${extra ? `, ${extra}` : ""}`;
  }
  if (!REFRESH_PROGRESS.has(g.phase)) return `${bar(0)}   0% ${g.phase}`;
  const pct = g.phase === "refreshed" ? 100 : (g.percentageComplete ?? 0);
  const label =
    g.phase === "waiting-for-other-refresh"
      ? `other refresh ${g.refreshStatus ?? ""}`.trim()
      : g.refreshStatus;
  return `${bar(pct)} ${String(pct).padStart(3)}% ${label ?? g.phase}`;
}

export function phaseColor(phase: TargetPhase): Color | undefined {
  if (DONE_PHASES.has(phase)) return "green";
  if (BLOCKED_PHASES.has(phase)) return "red";
  if (phase === "unmanaged") return "dim";
  return "yellow";
}

export function regionColor(state: string): Color {
  return state === "in-sync" ? "green" : state === "failed" ? "red" : "yellow";
}

function tokenCounts(report: StatusReport, baseline: StatusReport | undefined): string {
  const valid = report.managedTokensValid.length;
  const parts = [`${valid} managed valid`];
  if (baseline) {
    const now = new Set(report.managedTokensValid.map((t) => t.id));
    const revoked = baseline.managedTokensValid.filter((t) => !now.has(t.id)).length;
    parts.push(`${revoked} revoked since start`);
  }
  if (report.unmanagedTokens.length > 0) parts.push(`${report.unmanagedTokens.length} not managed`);
  return parts.join(" · ");
}

/** What happens next; while a rotation is pending, its promotion comes first. */
function nextSteps(report: StatusReport): string[] {
  const pending = report.secret.pendingVersionId;
  if (!pending) return report.next;
  return [
    `wait for the rotation function to create, test and promote version ${pending}; its rollout starts then`,
    ...report.next.filter((n) => !n.startsWith("nothing")),
  ];
}

/** The compact live view: versions, regions, a progress bar per group, token counts, what is next. */
export function renderProgress(report: StatusReport, options: ProgressOptions = {}): string {
  const paint = painter(options.color ?? false);
  const width = options.width ?? 100;
  const s = report.secret;
  const out: string[] = [];
  const label = (l: string) => paint(l.padEnd(9), "bold");
  out.push(`${label("Rotation")} ${s.name}  ${paint(`at ${iso(report.at) ?? ""}`, "dim")}`);
  const versions = [`current ${short(s.currentVersionId)}`, `pending ${short(s.pendingVersionId)}`];
  out.push(`${label("Version")} ${versions.join(" · ")}`);
  if (report.emergency && report.emergency.versionId === s.currentVersionId) {
    out.push(
      `${label("")} ${paint(`EMERGENCY: leaked ${short(report.emergency.leakedVersionId)}, min healthy ${report.emergency.minHealthyPercentage}%`, "red")}`,
    );
  }
  out.push(
    `${label("Regions")} ${report.regions.map((r) => `${r.region} ${paint(r.state, regionColor(r.state))}`).join(" · ")}`,
  );
  out.push(paint("Groups", "bold"));
  const regionWidth = Math.max(0, ...report.groups.map((g) => g.region.length));
  const nameWidth = Math.max(0, ...report.groups.map((g) => g.groupName.length));
  for (const g of report.groups) {
    out.push(
      `  ${g.region.padEnd(regionWidth)}  ${g.groupName.padEnd(nameWidth)}  ${paint(groupProgress(g), phaseColor(g.phase))}`,
    );
  }
  out.push(`${label("Tokens")} ${tokenCounts(report, options.baseline)}`);
  const [first, ...rest] = nextSteps(report);
  out.push(...wrap(first ?? "-", width, `${label("Next")} `, 10));
  for (const n of rest) out.push(...wrap(n, width, " ".repeat(10), 10));
  const state = rolloutState(report);
  out.push(`${label("State")} ${paint(state.text, state.color)}`);
  return `${out.join("\n")}\n`;
}

/** One line per observed change, for output that is not a terminal (logs, CI). No timestamp. */
export function progressLine(report: StatusReport, options: ProgressOptions = {}): string {
  const s = report.secret;
  const regions = report.regions.filter((r) => r.state === "in-sync").length;
  const groups = report.groups
    .map((g) => {
      const p = groupProgress(g).replace(/^\[[#-]+\]\s+/, "");
      return `${g.region}:${g.groupName} ${p}`;
    })
    .join(", ");
  return [
    `current ${short(s.currentVersionId)}${s.pendingVersionId ? ` pending ${short(s.pendingVersionId)}` : ""}`,
    `regions ${regions}/${report.regions.length} in sync`,
    groups || "no groups",
    `tokens ${tokenCounts(report, options.baseline)}`,
    `next: ${nextSteps(report).join("; ")}`,
  ].join(" | ");
}
