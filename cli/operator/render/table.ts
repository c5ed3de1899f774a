import { retryRefreshAdvice } from "../../../shared/rollout/markers";
import { BLOCKED_PHASES, DONE_PHASES } from "../../../shared/rollout/model";
import type { StatusReport } from "../../../shared/rollout/status";
import type { TargetPhase } from "../../../shared/rollout/types";

/**
 * Text renderings of a StatusReport: the full table (`status`), a compact live view (`rotate`,
 * the sandbox), a one-line summary (non-terminal output of `rotate`) and the stable JSON of
 * `status --json`. Pure functions of the report: no clock, no I/O, and never a token value (the
 * report holds none: only token ids, version ids and dates).
 */

export interface RenderOptions {
  /** ANSI colors (default false). */
  color?: boolean;
  /** Wrap prose (next steps, notices, details) at this many columns (default 100). */
  width?: number;
}

export interface ProgressOptions extends RenderOptions {
  /**
   * An earlier report of the same rollout (e.g. the first one seen when following started): the
   * managed tokens valid then and gone now are counted as revoked. Without it, revocations cannot
   * be counted (Buildkite does not list revoked tokens).
   */
  baseline?: StatusReport;
}

type Color = "red" | "green" | "yellow" | "dim" | "bold" | "cyan";
const CODES: Record<Color, [number, number]> = {
  red: [31, 39],
  green: [32, 39],
  yellow: [33, 39],
  cyan: [36, 39],
  dim: [2, 22],
  bold: [1, 22],
};

function painter(enabled: boolean) {
  return (text: string, color: Color | undefined): string => {
    if (!enabled || !color || text === "") return text;
    const [on, off] = CODES[color];
    return `\x1b[${on}m${text}\x1b[${off}m`;
  };
}

type Cell = string | { text: string; color?: Color | undefined };
const cellText = (c: Cell) => (typeof c === "string" ? c : c.text);
const cellColor = (c: Cell) => (typeof c === "string" ? undefined : c.color);

function table(
  headers: string[],
  rows: Cell[][],
  paint: ReturnType<typeof painter>,
  indent = "  ",
): string[] {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => cellText(r[i] ?? "").length)));
  const line = (cells: Cell[], header = false) =>
    `${indent}${cells
      .map((c, i) => {
        const last = i === cells.length - 1;
        const text = last ? cellText(c) : cellText(c).padEnd(widths[i] ?? 0);
        return paint(text, header ? "dim" : cellColor(c));
      })
      .join("  ")}`.trimEnd();
  return [line(headers, true), ...rows.map((r) => line(r))];
}

/** Word-wraps `text` to `width` columns; continuation lines get `hang` spaces. */
function wrap(text: string, width: number, first: string, hang: number): string[] {
  const out: string[] = [];
  let line = first;
  let fresh = true;
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (!fresh && line.length + 1 + word.length > width) {
      out.push(line);
      line = " ".repeat(hang) + word;
    } else {
      line = fresh ? line + word : `${line} ${word}`;
    }
    fresh = false;
  }
  out.push(line);
  return out;
}

/** "45s", "12m", "3h 5m", "4d 2h". */
export function duration(seconds: number): string {
  const s = Math.abs(Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400)
    return `${Math.floor(s / 3600)}h${s % 3600 >= 60 ? ` ${Math.floor((s % 3600) / 60)}m` : ""}`;
  return `${Math.floor(s / 86_400)}d${s % 86_400 >= 3600 ? ` ${Math.floor((s % 86_400) / 3600)}h` : ""}`;
}

const iso = (d: Date | undefined) => (d ? d.toISOString().replace(/\.\d{3}Z$/, "Z") : undefined);
const short = (id: string | undefined) => (id ? id.slice(0, 8) : "-");

function relative(at: Date | undefined, now: Date): string {
  if (!at) return "-";
  const seconds = (at.getTime() - now.getTime()) / 1000;
  return `${iso(at)} (${seconds >= 0 ? `in ${duration(seconds)}` : `${duration(seconds)} ago`})`;
}

/** Text progress bar: `[#####-----]`. */
export function bar(percent: number | undefined, width = 10): string {
  const p = Math.max(0, Math.min(100, percent ?? 0));
  const filled = Math.round((p / 100) * width);
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}]`;
}

type Group = StatusReport["groups"][number];
const REFRESH_PHASES = new Set(["refreshing", "refreshed", "failed", "partial", "waiting-for-other-refresh"]);
const IN_PLACE_PHASES = new Set(["updating", "updated", "blocked"]);

/**
 * The progress of one group for the current version. In place, by instance:
 * `[######----] 3/5 safe, 1 pending, 1 unreachable`; by refresh: `[#####-----]  50% InProgress`.
 */
export function groupProgress(g: Group): string {
  if (g.phase === "empty") return `${bar(100)} 100% empty`;
  if (IN_PLACE_PHASES.has(g.phase)) {
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
  if (!REFRESH_PHASES.has(g.phase)) return `${bar(0)}   0% ${g.phase}`;
  const pct = g.phase === "refreshed" ? 100 : (g.percentageComplete ?? 0);
  const label =
    g.phase === "waiting-for-other-refresh"
      ? `other refresh ${g.refreshStatus ?? ""}`.trim()
      : g.refreshStatus;
  return `${bar(pct)} ${String(pct).padStart(3)}% ${label ?? g.phase}`;
}

function phaseColor(phase: TargetPhase): Color | undefined {
  if (DONE_PHASES.has(phase)) return "green";
  if (BLOCKED_PHASES.has(phase)) return "red";
  if (phase === "unmanaged") return "dim";
  return "yellow";
}

function regionColor(state: string): Color {
  return state === "in-sync" ? "green" : state === "failed" ? "red" : "yellow";
}

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

function stateLine(report: StatusReport): { text: string; color: Color } {
  if (report.waitingFor.includes("operator")) return { text: "BLOCKED: needs an operator", color: "red" };
  if (report.complete) return { text: "rollout of the current version complete", color: "green" };
  if (report.waitingFor.length > 0)
    return { text: `in progress: waiting for ${report.waitingFor.join(", ")}`, color: "yellow" };
  return { text: "idle: nothing of this project's is being rolled out", color: "dim" };
}

/** The full table: what `bk-agent-token status` prints. */
export function renderStatus(report: StatusReport, options: RenderOptions = {}): string {
  const paint = painter(options.color ?? false);
  const width = options.width ?? 100;
  const now = report.at;
  const s = report.secret;
  const out: string[] = [];
  const head = (title: string) => out.push("", paint(title, "bold"));

  out.push(`${paint("Secret", "bold")}    ${s.name} (primary region ${s.primaryRegion})`);
  out.push(`          ${s.arn}`);
  if (s.rotationEnabled) {
    out.push(`${paint("Rotation", "bold")}  enabled, ${s.schedule ?? "no schedule"}`);
    out.push(`          last ${relative(s.lastRotatedAt, now)}`);
    out.push(`          next ${relative(s.nextRotationAt, now)}`);
  } else {
    out.push(`${paint("Rotation", "bold")}  ${paint("NOT enabled (no scheduled rotation)", "yellow")}`);
  }
  if (s.overdue)
    out.push(
      paint(`          OVERDUE: the rotation due ${iso(s.nextRotationAt) ?? "?"} has not happened`, "red"),
    );
  if (s.pendingVersionId)
    out.push(paint(`          rotation under way: version ${s.pendingVersionId} holds AWSPENDING`, "yellow"));
  const state = stateLine(report);
  out.push(`${paint("State", "bold")}     ${paint(state.text, state.color)}`);

  head("Versions");
  out.push(
    ...table(
      ["VERSION", "STAGES", "CREATED", "AGE", "TOKEN", "TOKEN EXPIRES"],
      report.versions.map((v) => [
        v.versionId,
        v.stages.join(",") || "-",
        iso(v.createdAt) ?? "-",
        v.ageSeconds === undefined ? "-" : duration(v.ageSeconds),
        v.token ? v.token.id : { text: "- (not managed, or revoked)", color: "dim" },
        !v.token
          ? "-"
          : v.token.expiresAt === undefined
            ? "never"
            : {
                text: `${v.token.expiresAt} (${(v.token.expiresInSeconds ?? 0) < 0 ? `EXPIRED ${duration(v.token.expiresInSeconds ?? 0)} ago` : `in ${duration(v.token.expiresInSeconds ?? 0)}`})`,
                color: (v.token.expiresInSeconds ?? 0) < 86_400 ? "yellow" : undefined,
              },
      ]),
      paint,
    ),
  );

  head("Regions");
  out.push(
    ...table(
      ["REGION", "ROLE", "SERVES", "STATE", "DETAIL"],
      report.regions.map((r) => [
        r.region,
        r.primary ? "primary" : "replica",
        r.currentVersionId
          ? `${short(r.currentVersionId)}${r.currentVersionId === s.currentVersionId ? " (current)" : ""}`
          : "-",
        { text: r.state, color: regionColor(r.state) },
        r.detail ?? "",
      ]),
      paint,
    ),
  );

  head("Groups");
  out.push(
    ...table(
      ["REGION", "GROUP", "INSTANCES", "PHASE", "PROGRESS", "DETAIL"],
      report.groups.map((g) => [
        g.region,
        g.groupName,
        String(g.instances),
        { text: g.phase, color: phaseColor(g.phase) },
        REFRESH_PHASES.has(g.phase) || IN_PLACE_PHASES.has(g.phase) || g.phase === "empty"
          ? groupProgress(g)
          : "-",
        g.detail,
      ]),
      paint,
    ),
  );

  head("Tokens");
  const managed = report.managedTokensValid;
  out.push(
    ...wrap(
      managed.length === 0
        ? "none created by this project is valid"
        : managed
            .map(
              (t) =>
                `${t.id} (version ${short(t.versionId)}${t.versionId === s.currentVersionId ? ", current" : ""})`,
            )
            .join(", "),
      width,
      `  managed, still valid (${managed.length}): `,
      4,
    ),
  );
  if (report.unmanagedTokens.length > 0) {
    out.push(
      ...wrap(
        report.unmanagedTokens.map((t) => `${t.id} "${t.description}"`).join(", "),
        width,
        `  not managed by this project (${report.unmanagedTokens.length}): `,
        4,
      ),
    );
  }

  if (report.emergency) {
    const e = report.emergency;
    head("Emergency");
    const active = e.versionId === s.currentVersionId || e.versionId === s.pendingVersionId;
    out.push(
      ...wrap(
        `declared for version ${e.versionId} (leaked version ${e.leakedVersionId}, min healthy ${e.minHealthyPercentage}%, protected instances refreshed)${active ? "" : " — not in effect: that version is neither current nor pending"}`,
        width,
        "  ",
        2,
      ).map((l) => paint(l, active ? "red" : "dim")),
    );
  }

  head("Next (what reconcile will do)");
  for (const n of report.next) out.push(...wrap(n, width, "  - ", 4));
  if (report.notices.length > 0) {
    head("Notices");
    for (const n of report.notices) out.push(...wrap(n, width, "  - ", 4));
  }
  const attention = statusAttention(report);
  if (attention.length > 0) {
    head("Needs attention");
    for (const a of attention) out.push(...wrap(a, width, "  ! ", 4).map((l) => paint(l, "red")));
  }
  return `${out.join("\n")}\n`;
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
  const state = stateLine(report);
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

/**
 * `bk-agent-token status --json`, schema version 1. Stable: fields are only ever added; every key
 * is always present (null when unknown); dates are ISO 8601 UTC strings; durations are seconds.
 *
 * {
 *   "schemaVersion": 1,
 *   "at": ISO,                              when the snapshot was taken
 *   "secret": { "arn", "name", "primaryRegion", "rotationEnabled": bool, "schedule": string|null,
 *               "lastRotatedAt": ISO|null, "nextRotationAt": ISO|null, "overdue": bool,
 *               "currentVersionId": string|null, "pendingVersionId": string|null },
 *   "versions": [ { "versionId", "stages": [string], "createdAt": ISO|null, "ageSeconds": number|null,
 *                   "token": { "id", "createdAt": ISO|null, "expiresAt": ISO|null,
 *                              "expiresInSeconds": number|null } | null } ],   newest first
 *   "regions": [ { "region", "primary": bool, "currentVersionId": string|null,
 *                  "state": "in-sync"|"lagging"|"failed", "detail": string|null } ],
 *   "strategy": "in-place"|"refresh",
 *   "groups": [ { "region", "groupName", "stackName": string|null, "phase", "instances": number,
 *                 "progress": { "total", "safe", "pending", "unreachable" },
 *                 "waiting": [ { "instanceId", "state", "detail" } ],   instances not yet safe
 *                 "refreshId": string|null, "refreshStatus": string|null,
 *                 "percentageComplete": number|null, "detail" } ],
 *   "tokens": { "managedValid": [ { "id", "versionId", "createdAt": ISO|null, "expiresAt": ISO|null } ],
 *               "unmanaged": [ { "id", "description" } ] },
 *   "emergency": { "versionId", "leakedVersionId", "minHealthyPercentage" } | null,
 *   "rollout": { "complete": bool, "waitingFor": ["replicas"|"refreshes"|"commands"|"operator"],
 *                "next": [string], "notices": [string] },
 *   "attention": [string],                  why the exit code is 3 (empty: 0)
 *   "exitCode": 0|3
 * }
 */
export interface StatusJson {
  schemaVersion: 1;
  at: string;
  secret: {
    arn: string;
    name: string;
    primaryRegion: string;
    rotationEnabled: boolean;
    schedule: string | null;
    lastRotatedAt: string | null;
    nextRotationAt: string | null;
    overdue: boolean;
    currentVersionId: string | null;
    pendingVersionId: string | null;
  };
  versions: Array<{
    versionId: string;
    stages: string[];
    createdAt: string | null;
    ageSeconds: number | null;
    token: {
      id: string;
      createdAt: string | null;
      expiresAt: string | null;
      expiresInSeconds: number | null;
    } | null;
  }>;
  regions: Array<{
    region: string;
    primary: boolean;
    currentVersionId: string | null;
    state: "in-sync" | "lagging" | "failed";
    detail: string | null;
  }>;
  strategy: string;
  groups: Array<{
    region: string;
    groupName: string;
    stackName: string | null;
    phase: string;
    instances: number;
    progress: { total: number; safe: number; pending: number; unreachable: number };
    waiting: Array<{ instanceId: string; state: string; detail: string }>;
    refreshId: string | null;
    refreshStatus: string | null;
    percentageComplete: number | null;
    detail: string;
  }>;
  tokens: {
    managedValid: Array<{
      id: string;
      versionId: string;
      createdAt: string | null;
      expiresAt: string | null;
    }>;
    unmanaged: Array<{ id: string; description: string }>;
  };
  emergency: { versionId: string; leakedVersionId: string; minHealthyPercentage: number } | null;
  rollout: { complete: boolean; waitingFor: string[]; next: string[]; notices: string[] };
  attention: string[];
  exitCode: 0 | 3;
}

/** Buildkite's timestamps as ISO 8601 UTC (unparseable ones are passed through as given). */
function isoString(value: string | undefined): string | null {
  if (value === undefined) return null;
  const t = Date.parse(value);
  return Number.isNaN(t) ? value : new Date(t).toISOString();
}

const isoDate = (d: Date | undefined): string | null => (d ? d.toISOString() : null);
const orNull = <T>(v: T | undefined): T | null => (v === undefined ? null : v);

export function statusJson(report: StatusReport): StatusJson {
  const s = report.secret;
  const attention = statusAttention(report);
  return {
    schemaVersion: 1,
    at: report.at.toISOString(),
    secret: {
      arn: s.arn,
      name: s.name,
      primaryRegion: s.primaryRegion,
      rotationEnabled: s.rotationEnabled,
      schedule: orNull(s.schedule),
      lastRotatedAt: isoDate(s.lastRotatedAt),
      nextRotationAt: isoDate(s.nextRotationAt),
      overdue: s.overdue,
      currentVersionId: orNull(s.currentVersionId),
      pendingVersionId: orNull(s.pendingVersionId),
    },
    versions: report.versions.map((v) => ({
      versionId: v.versionId,
      stages: [...v.stages],
      createdAt: isoDate(v.createdAt),
      ageSeconds: orNull(v.ageSeconds),
      token: v.token
        ? {
            id: v.token.id,
            createdAt: isoString(v.token.createdAt),
            expiresAt: isoString(v.token.expiresAt),
            expiresInSeconds: orNull(v.token.expiresInSeconds),
          }
        : null,
    })),
    regions: report.regions.map((r) => ({
      region: r.region,
      primary: r.primary,
      currentVersionId: orNull(r.currentVersionId),
      state: r.state,
      detail: orNull(r.detail),
    })),
    strategy: report.strategy,
    groups: report.groups.map((g) => ({
      region: g.region,
      groupName: g.groupName,
      stackName: orNull(g.stackName),
      phase: g.phase,
      instances: g.instances,
      progress: { ...g.progress },
      waiting: g.waiting.map((w) => ({ ...w })),
      refreshId: orNull(g.refreshId),
      refreshStatus: orNull(g.refreshStatus),
      percentageComplete: orNull(g.percentageComplete),
      detail: g.detail,
    })),
    tokens: {
      managedValid: report.managedTokensValid.map((t) => ({
        id: t.id,
        versionId: t.versionId,
        createdAt: isoString(t.createdAt),
        expiresAt: isoString(t.expiresAt),
      })),
      unmanaged: report.unmanagedTokens.map((t) => ({ id: t.id, description: t.description })),
    },
    emergency: report.emergency ? { ...report.emergency } : null,
    rollout: {
      complete: report.complete,
      waitingFor: [...report.waitingFor],
      next: [...report.next],
      notices: [...report.notices],
    },
    attention,
    exitCode: attention.length > 0 ? 3 : 0,
  };
}
