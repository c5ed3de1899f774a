/**
 * The summary `npm run sandbox` prints after a run: per rotation figures, run totals, every
 * invariant with its explanations, and why a blocked rollout stopped. Pure: facts in, text out,
 * through the one table and painter of shared/lib/terminal.ts.
 */
import { type Cell, painter, table } from "../../shared/lib/terminal";
import {
  type FleetDelta,
  finalRotation,
  groupKey,
  type RotationFacts,
  type RunFacts,
  refreshFor,
  revocationOf,
  seconds,
  short,
} from "./facts";
import type { InvariantResult } from "./invariants";
import { type Outcome, summaryNumbers } from "./outcome";

export interface RenderOptions {
  color?: boolean;
}

export function renderSummary(
  facts: RunFacts,
  results: InvariantResult[],
  outcome: Outcome,
  options: RenderOptions = {},
): string {
  const paint = painter(options.color === true);
  const out: string[] = [];
  const rotations = facts.rotations;
  const rel = (from: Date | undefined, to: Date | undefined) =>
    from && to ? `+${seconds(Math.max(0, to.getTime() - from.getTime()))}` : "—";
  const footnotes: string[] = [];
  const perRotation = (label: string, cell: (r: RotationFacts) => Cell) =>
    rows.push([label, ...rotations.map(cell)]);
  const fleetCell = (f: (d: FleetDelta) => string) => (r: RotationFacts) => (r.fleet ? f(r.fleet) : "—");

  const header = ["per rotation", ...rotations.map((r) => `rotation ${r.index}`)];
  const rows: Cell[][] = [];
  perRotation("secret version", (r) => short(r.versionId));
  perRotation("promotion (rotate-secret → 4 steps)", (r) =>
    r.promotedAt
      ? `${seconds(r.promotedAt.getTime() - r.startedAt.getTime())}${r.attempts > 1 ? ` (${r.attempts} attempts)` : ""}`
      : "failed",
  );
  for (const region of facts.replicaRegions) {
    perRotation(`replica ${region} in sync`, (r) =>
      r.replicasInSyncAt[region] ? rel(r.promotedAt, r.replicasInSyncAt[region]) : "—",
    );
  }
  for (const g of facts.groups) {
    if (!rotations.some((r) => refreshFor(facts, r, g))) continue;
    perRotation(`refresh ${g.region}/${g.stackName}`, (r) => {
      const refresh = refreshFor(facts, r, g);
      if (!refresh) return "—";
      const span = `${rel(r.promotedAt, refresh.startTime)} → ${refresh.endTime ? rel(r.promotedAt, refresh.endTime) : "…"}`;
      return refresh.status === "Successful"
        ? { text: `${span} ok`, color: "green" }
        : { text: `${span} ${refresh.status}`, color: "red" };
    });
  }
  if (rotations.some((r) => r.ssmOutage)) {
    perRotation("SSM agent offline", (r) =>
      r.ssmOutage
        ? `${r.ssmOutage.instanceId} ${r.ssmOutage.restoredAt ? `back at ${rel(r.promotedAt, r.ssmOutage.restoredAt)}` : "(kept offline)"}`
        : "—",
    );
  }
  perRotation(
    "install commands (failed)",
    fleetCell((d) => `${d.installInvocations} (${d.installFailures})`),
  );
  perRotation(
    "instances replaced by the rollout",
    fleetCell((d) => String(d.replacedByRollout)),
  );
  perRotation(
    "jobs interrupted",
    fleetCell((d) => String(d.jobsInterrupted)),
  );
  perRotation(
    "natural churn (idle self-terminations / launches)",
    fleetCell((d) => `${d.selfTerminated} / ${d.churnLaunches}`),
  );
  perRotation(
    "failed registrations",
    fleetCell((d) => String(d.failedRegistrations)),
  );
  perRotation("promotion → revocation", (r) => {
    const revoked = revocationOf(facts, r);
    if (revoked) return `${rel(r.promotedAt, revoked.at)} (${revoked.tokenIds.map(short).join(", ")})`;
    const older = facts.tokens.some(
      (t) => t.versionId && t.versionId !== r.versionId && t.createdAt.getTime() < r.startedAt.getTime(),
    );
    if (!older) {
      if (!footnotes.includes("initial")) footnotes.push("initial");
      return "none¹";
    }
    return "none (blocked)";
  });
  perRotation("reconcile runs (failed)", (r) => `${r.reconcileRuns} (${r.reconcileFailures})`);

  const n = summaryNumbers(facts, results);
  const initial = facts.tokens.find((t) => t.initial);
  const totalsRows: string[][] = [
    [
      "run time",
      `${seconds(facts.endedAt.getTime() - facts.startedAt.getTime())} (start-up ${seconds(facts.worldReadyAt.getTime() - facts.startedAt.getTime())})`,
    ],
    ["strategy", facts.strategy],
    ["instances replaced by the rollout", `${n.replacedByRollout}; jobs interrupted ${n.jobsInterrupted}`],
    [
      "registrations after start-up",
      `${n.registrations} ok, ${n.failedRegistrations} failed (with a revoked token: ${n.failedWithRevokedToken})`,
    ],
    ["tokens created", `${n.tokensCreated} (by rotate-token's createSecret)`],
    [
      "tokens revoked",
      `${n.tokensRevoked}${
        n.tokensRevoked > 0
          ? ` (${facts.tokens
              .filter((t) => t.revokedAt)
              .map((t) => `${short(t.id)} for version ${short(t.versionId)}`)
              .join(", ")})`
          : ""
      }`,
    ],
    [
      "tokens valid at the end",
      `${n.managedValid.length} managed (${n.managedValid.map((t) => `version ${short(t.versionId)}`).join(", ") || "none"}) + ${n.unmanagedValid.length} unmanaged${initial?.valid ? " (the initial token, made by a human²)" : ""}`,
    ],
    [
      "cfg snapshots at revocation",
      `${facts.revocations.length} (${facts.revocations.map((r) => `${r.instances.length} instances`).join(", ") || "no revocation"})`,
    ],
    [
      "alerts received",
      `${n.alerts}${facts.alerts.length > 0 ? `: ${facts.alerts.map((a) => `"${a.subject ?? "(no subject)"}"`).join(", ")}` : ""}`,
    ],
    [
      "Buildkite API requests",
      `${facts.buildkiteRequests.total} (${facts.buildkiteRequests.failed} answered 429/5xx or dropped, then retried)`,
    ],
    [
      "handler log lines",
      `${facts.logLines.total} (${facts.logLines.warn} warnings, ${facts.logLines.error} errors)`,
    ],
  ];

  out.push(
    "",
    paint("Summary", "bold"),
    ...table(header, rows, paint),
    "",
    // No header row: the totals are label/value pairs.
    ...table(["", ""], totalsRows, paint).slice(1),
    "",
  );
  if (footnotes.includes("initial")) {
    out.push(
      "  ¹ nothing to revoke: the only older token is the initial one, which a human created;",
      "    this tool only ever revokes tokens it made, so revoke the initial token by hand once",
      `    the first rollout is complete${rotations.length > 1 ? " (the second rotation shows a managed token being revoked)" : ""}.`,
    );
  }
  if (initial?.valid) {
    out.push("  ² never revoked by this tool (its description does not name this secret and a version).");
  }
  out.push("", paint("Safety invariants", "bold"));
  for (const r of results) {
    out.push(`  ${r.ok ? paint("✓", "green") : paint("✗", "red")} ${r.rule}`);
    for (const e of r.explanations) out.push(`      ${paint(e, "red")}`);
  }
  if (outcome.kind === "blocked") {
    out.push("", paint("Why the rollout stopped", "yellow"), ...explainBlocked(facts).map((l) => `  ${l}`));
  }
  out.push("");
  return out.join("\n");
}

function explainBlocked(facts: RunFacts): string[] {
  const last = finalRotation(facts);
  const lines: string[] = [];
  if (last?.error) lines.push(`Rotation ${last.index} failed: ${last.error}.`);
  if (last) {
    for (const g of facts.groups) {
      const refresh = refreshFor(facts, last, g);
      if (refresh && refresh.status !== "Successful") {
        lines.push(
          `The instance refresh of ${groupKey(g)} ended ${refresh.status}${refresh.statusReason ? ` (${refresh.statusReason})` : ""}${facts.failRefreshRegion === g.region ? ", as --fail-refresh asked" : ""}.`,
        );
      }
    }
    if (last.ssmOutage && !last.ssmOutage.restoredAt) {
      lines.push(
        `The SSM agent of ${last.ssmOutage.region}/${last.ssmOutage.instanceId} stayed offline (--ssm-offline): Run Command cannot rewrite its cfg, which still holds the previous token.`,
      );
    }
  }
  lines.push(
    "Some instances may still hold the previous token, so reconcile revokes nothing and alerts once;",
    "agents keep working with either token. In AWS an operator fixes the cause (brings the SSM agent",
    "back, or lets IN_PLACE_FALLBACK refresh or replace the instance; for a refresh, removes the",
    "group's refresh marker tag), and the next reconcile run finishes the rollout.",
  );
  for (const a of facts.alerts) lines.push(`Alert sent (full text above): ${a.subject ?? "(no subject)"}`);
  return lines;
}
