import { duration, iso, painter, type RenderOptions, short, table, wrap } from "../../../shared/lib/terminal";
import type { StatusReport } from "../../../shared/rollout/status";
import { rolloutState, statusAttention } from "./advice";
import { groupProgress, hasProgress, phaseColor, regionColor } from "./progress";

/**
 * `bk-agent-token status` as a person reads it: the secret, versions, regions, groups, tokens, the
 * emergency, what reconcile does next and what needs attention. A pure function of the report: no
 * clock, no I/O, and never a token value (the report holds none: only token ids, version ids, dates).
 */

function relative(at: Date | undefined, now: Date): string {
  if (!at) return "-";
  const seconds = (at.getTime() - now.getTime()) / 1000;
  return `${iso(at)} (${seconds >= 0 ? `in ${duration(seconds)}` : `${duration(seconds)} ago`})`;
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
  const state = rolloutState(report);
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
        hasProgress(g.phase) ? groupProgress(g) : "-",
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
