/**
 * What `npm run sandbox` concludes from a run: the safety invariants (checked from what the local
 * servers recorded, never from what the functions claim), the outcome and its exit code, and the
 * summary table. Everything here is pure: the scenario gathers `RunFacts` (which hold no token
 * value), these functions judge and render them.
 */

export type Expectation = "complete" | "blocked";

export interface RotationFacts {
  /** 1-based. */
  index: number;
  /** Undefined when the rotation failed before Secrets Manager named a version. */
  versionId: string | undefined;
  /** Just before `rotate-secret`. */
  startedAt: Date;
  /** Just after finishSecret returned (AWSCURRENT moved); undefined when the rotation failed. */
  promotedAt: Date | undefined;
  /** When each replica region was first seen serving the version. */
  replicasInSyncAt: Record<string, Date>;
  /** How many times the four steps were driven (Secrets Manager retries a failed rotation). */
  attempts: number;
  /** Why the rotation itself failed (a step kept failing). */
  error: string | undefined;
  /** Region whose refreshes were made to fail before this rotation. */
  failRefreshRegion: string | undefined;
  reconcileRuns: number;
  reconcileFailures: number;
  schedulesFired: number;
  /** The follow-up stopped at its time bound rather than at completion or a blocked state. */
  timedOut: boolean;
  endedAt: Date | undefined;
}

export interface TokenFacts {
  id: string;
  description: string;
  /** The secret version this project made the token for; undefined for tokens it did not make. */
  versionId: string | undefined;
  createdAt: Date;
  revokedAt: Date | null;
  valid: boolean;
  /** The token the secret held before the first rotation (made by a human). */
  initial: boolean;
  /** Some version of the secret held it, so instances could have read it. */
  storedInSecret: boolean;
}

export interface RefreshFacts {
  region: string;
  groupName: string;
  id: string;
  status: string;
  statusReason: string | undefined;
  startTime: Date;
  endTime: Date | undefined;
}

export interface RegistrationFacts {
  at: Date;
  /** The instance id (agents register with their instance id as name). */
  name: string;
  tokenId: string | null;
  ok: boolean;
  status: number;
}

export interface InstanceFacts {
  region: string;
  groupName: string;
  instanceId: string;
  lifecycleState: string;
}

export interface GroupFacts {
  region: string;
  name: string;
  instances: number;
  protectedInstances: number;
}

export interface AlertFacts {
  subject: string | undefined;
  message: string;
}

export interface RunFacts {
  expect: Expectation;
  failRefreshRegion: string | undefined;
  primaryRegion: string;
  replicaRegions: string[];
  groups: GroupFacts[];
  startedAt: Date;
  /** When the world was up: registrations from then on are re-registrations. */
  worldReadyAt: Date;
  endedAt: Date;
  rotations: RotationFacts[];
  tokens: TokenFacts[];
  refreshes: RefreshFacts[];
  registrations: RegistrationFacts[];
  instances: InstanceFacts[];
  alerts: AlertFacts[];
  /** Faults injected by --replica-lag / --buildkite-flaky (--fail-refresh is `failRefreshRegion`). */
  injected: { replicaLagSeconds: number | undefined; buildkiteFlaky: boolean };
  /** Requests the Buildkite API stand-in answered, and how many of them failed (429, 5xx, dropped). */
  buildkiteRequests: { total: number; failed: number };
  /** Token values (agent tokens and the API token) found in anything the run printed or logged. */
  tokenLeaks: number;
  /** Lines the handlers logged, by level. */
  logLines: { total: number; warn: number; error: number };
}

export interface InvariantResult {
  id: string;
  /** What must hold, in words. */
  rule: string;
  ok: boolean;
  /** One sentence per violation. */
  explanations: string[];
}

export interface Violation {
  invariant: string;
  explanation: string;
}

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

const short = (id: string | undefined | null): string => (id ? id.slice(0, 8) : "?");
const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const groupKey = (g: { region: string; groupName?: string; name?: string }) =>
  `${g.region}/${g.groupName ?? g.name ?? "?"}`;

/** The refresh of a group that belongs to a rotation: the first one started during it. */
export function refreshFor(
  facts: Pick<RunFacts, "refreshes" | "rotations">,
  rotation: RotationFacts,
  group: { region: string; name: string },
): RefreshFacts | undefined {
  const next = facts.rotations.find((r) => r.index === rotation.index + 1);
  return facts.refreshes
    .filter(
      (r) =>
        r.region === group.region &&
        r.groupName === group.name &&
        r.startTime.getTime() >= rotation.startedAt.getTime() &&
        (next === undefined || r.startTime.getTime() < next.startedAt.getTime()),
    )
    .sort((a, b) => a.startTime.getTime() - b.startTime.getTime())[0];
}

function finalRotation(facts: RunFacts): RotationFacts | undefined {
  return facts.rotations[facts.rotations.length - 1];
}

/** True when every group refreshed successfully for the final version and only its token is left. */
export function rolloutComplete(facts: RunFacts): boolean {
  const last = finalRotation(facts);
  if (!last?.versionId || last.error) return false;
  const refreshed = facts.groups.every((g) => refreshFor(facts, last, g)?.status === "Successful");
  const managedValid = facts.tokens.filter((t) => t.versionId && t.valid);
  return refreshed && managedValid.length === 1 && managedValid[0]?.versionId === last.versionId;
}

export function checkInvariants(facts: RunFacts): InvariantResult[] {
  const results: InvariantResult[] = [];
  const check = (id: string, rule: string, explanations: string[]) =>
    results.push({ id, rule, ok: explanations.length === 0, explanations });
  const tokenById = new Map(facts.tokens.map((t) => [t.id, t]));
  const rotationIndex = new Map(
    facts.rotations.flatMap((r) => (r.versionId ? [[r.versionId, r.index] as const] : [])),
  );
  const t0 = facts.startedAt.getTime();
  const at = (d: Date) => `+${seconds(d.getTime() - t0)}`;

  // 1. Revoked too early shows up as an agent that could not register with the token it read.
  const refused = facts.registrations.flatMap((r) => {
    const token = r.tokenId ? tokenById.get(r.tokenId) : undefined;
    if (r.ok || !token?.revokedAt || token.revokedAt.getTime() > r.at.getTime()) return [];
    return [
      `agent ${r.name} could not register at ${at(r.at)}: its token ${short(token.id)} (version ${short(token.versionId)}) had been revoked ${seconds(r.at.getTime() - token.revokedAt.getTime())} earlier`,
    ];
  });
  check("no-registration-with-revoked-token", "no agent failed to register because its token was revoked", [
    ...refused.slice(0, 5),
    ...(refused.length > 5 ? [`… and ${refused.length - 5} more`] : []),
  ]);

  // 2. A token is revoked only after every target's refresh for a newer version ended successfully.
  const early: string[] = [];
  for (const token of facts.tokens) {
    if (!token.revokedAt) continue;
    const revokedAt = token.revokedAt.getTime();
    if (!token.versionId) {
      early.push(
        `token ${short(token.id)} ("${token.description}") was not created by this project, yet it was revoked at ${at(token.revokedAt)}`,
      );
      continue;
    }
    // Never stored in the secret (left by a failed create): no instance could ever have read it.
    if (!token.storedInSecret) continue;
    const own = rotationIndex.get(token.versionId) ?? 0;
    const newer = facts.rotations.filter((r) => r.index > own && r.versionId);
    const covered = newer.some((r) =>
      facts.groups.every((g) => {
        const refresh = refreshFor(facts, r, g);
        return refresh?.status === "Successful" && (refresh.endTime?.getTime() ?? Infinity) <= revokedAt;
      }),
    );
    if (covered) continue;
    const last = [...newer].reverse().find((r) => r.startedAt.getTime() <= revokedAt);
    const gaps = last
      ? facts.groups.flatMap((g) => {
          const refresh = refreshFor(facts, last, g);
          if (!refresh) return [`${groupKey(g)} had no refresh`];
          if (refresh.status !== "Successful") return [`${groupKey(g)}'s refresh was ${refresh.status}`];
          if ((refresh.endTime?.getTime() ?? Infinity) > revokedAt) {
            return [
              `${groupKey(g)}'s refresh ended only at ${refresh.endTime ? at(refresh.endTime) : "(still running)"}`,
            ];
          }
          return [];
        })
      : ["no newer version had been rolled out"];
    early.push(
      `token ${short(token.id)} (version ${short(token.versionId)}) was revoked at ${at(token.revokedAt)} while ${gaps.join(", ")}`,
    );
  }
  check(
    "revoked-only-after-every-refresh",
    "a token is revoked only after every group's refresh for a newer version ended successfully (and a token this project did not make is never revoked)",
    early,
  );

  // 3. Every agent in service can restart: the token it registered with is still valid.
  const lastOk = new Map<string, RegistrationFacts>();
  for (const r of facts.registrations) if (r.ok) lastOk.set(r.name, r);
  const stranded = facts.instances.flatMap((i) => {
    if (i.lifecycleState !== "InService") return [];
    const registration = lastOk.get(i.instanceId);
    if (!registration) return [`${i.region}/${i.groupName} instance ${i.instanceId} never registered`];
    const token = registration.tokenId ? tokenById.get(registration.tokenId) : undefined;
    if (token?.valid) return [];
    return [
      `${i.region}/${i.groupName} instance ${i.instanceId} registered with token ${short(registration.tokenId)}, which is no longer valid: it could not re-register after an agent restart`,
    ];
  });
  check(
    "instances-hold-valid-tokens",
    "every instance in service registered with a token that is still valid",
    stranded.slice(0, 5).concat(stranded.length > 5 ? [`… and ${stranded.length - 5} more`] : []),
  );

  // 4. What must be valid at the end.
  const last = finalRotation(facts);
  const managedValid = facts.tokens.filter((t) => t.versionId && t.valid);
  if (facts.expect === "complete") {
    const ok = managedValid.length === 1 && managedValid[0]?.versionId === last?.versionId;
    check(
      "one-managed-token-valid",
      "exactly one token made by this project is valid at the end: the current version's",
      ok
        ? []
        : [
            `${managedValid.length} managed token(s) valid (${managedValid.map((t) => `${short(t.id)} for version ${short(t.versionId)}`).join(", ") || "none"}); expected only the token of version ${short(last?.versionId)}`,
          ],
    );
  } else {
    const previous = facts.rotations.find((r) => last && r.index === last.index - 1);
    const old = previous
      ? facts.tokens.find((t) => t.versionId !== undefined && t.versionId === previous.versionId)
      : facts.tokens.find((t) => t.initial);
    check(
      "old-token-still-valid",
      "while the rollout is blocked, the token the previous version holds stays valid",
      old?.valid
        ? []
        : [
            `the previous token ${short(old?.id)} is ${old ? "no longer valid" : "missing"}, although the rollout of version ${short(last?.versionId)} did not complete`,
          ],
    );
  }

  // 5. Never a token value in anything printed or logged.
  check(
    "no-token-in-output",
    "no token value appears in the output or the handlers' logs",
    facts.tokenLeaks > 0
      ? [`${facts.tokenLeaks} occurrence(s) of a token value in the output or the handlers' logs`]
      : [],
  );

  // 6. The rollout itself (happy path) or the alert (blocked path).
  if (facts.expect === "complete") {
    const problems: string[] = [];
    for (const r of facts.rotations) {
      if (r.error) problems.push(`rotation ${r.index} failed: ${r.error}`);
    }
    if (last && !last.error) {
      for (const g of facts.groups) {
        const refresh = refreshFor(facts, last, g);
        if (refresh?.status !== "Successful") {
          problems.push(
            `${groupKey(g)}: refresh for version ${short(last.versionId)} ${refresh ? `${refresh.status}${refresh.statusReason ? ` (${refresh.statusReason})` : ""}` : "never started"}${last.timedOut ? ` (gave up waiting after ${seconds((last.endedAt?.getTime() ?? 0) - last.startedAt.getTime())})` : ""}`,
          );
        }
      }
    }
    check("final-refreshes-successful", "every group's refresh for the final version succeeded", problems);
  } else {
    const region = facts.failRefreshRegion ?? "";
    const alerts = facts.alerts;
    const ok = alerts.length === 1 && (alerts[0]?.subject ?? alerts[0]?.message ?? "").includes(region);
    check(
      "alerted-once",
      `the blocked rollout raised exactly one alert, naming ${region}`,
      ok
        ? []
        : [
            `${alerts.length} alert(s) received${alerts.length > 0 ? `: ${alerts.map((a) => `"${a.subject ?? "(no subject)"}"`).join(", ")}` : ""}`,
          ],
    );
  }
  return results;
}

export function violationsOf(results: InvariantResult[]): Violation[] {
  return results.flatMap((r) => r.explanations.map((explanation) => ({ invariant: r.id, explanation })));
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
    const last = finalRotation(facts);
    const failed = last
      ? facts.groups.flatMap((g) => {
          const refresh = refreshFor(facts, last, g);
          return refresh && refresh.status !== "Successful" ? [`${groupKey(g)} (${refresh.status})`] : [];
        })
      : [];
    const why = last?.error
      ? `rotation ${last.index} failed: ${last.error}`
      : failed.length > 0
        ? `the instance refresh of ${failed.join(", ")} did not succeed`
        : "the rollout did not finish in time";
    const designed = facts.expect === "blocked" ? "rollout blocked as designed" : "rollout did not complete";
    return {
      exitCode: EXIT.incomplete,
      kind: "blocked",
      headline: `sandbox: ${designed} — ${why}; the previous token stays valid, ${facts.alerts.length} alert(s) sent; no token was revoked early (exit 2)`,
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
      `replicas lagged ${facts.injected.replicaLagSeconds} s (in sync at most ${Math.max(0, ...lags).toFixed(1)} s after promotion; nothing was refreshed in a region before it served the new token)`,
    );
  }
  if (facts.injected.buildkiteFlaky) {
    faults.push(
      `the Buildkite API failed ${facts.buildkiteRequests.failed} of ${facts.buildkiteRequests.total} requests and every idempotent call was retried (token creation never blindly)`,
    );
  }
  if (faults.length > 0) {
    return {
      exitCode: EXIT.degraded,
      kind: "degraded",
      headline: `sandbox: rolled out despite injected faults — ${faults.join("; ")}; ${facts.alerts.length} alert(s) sent; every safety invariant held (exit 3)`,
    };
  }
  return {
    exitCode: EXIT.complete,
    kind: "complete",
    headline: `sandbox: OK — ${facts.rotations.length} rotation(s) rolled out to ${instances} instances in ${facts.groups.length} groups across ${1 + facts.replicaRegions.length} regions; every safety invariant held (exit 0)`,
  };
}

// ---- Rendering -------------------------------------------------------------------------------------

export interface RenderOptions {
  color?: boolean;
}

const paint = (on: boolean | undefined, code: string, text: string) =>
  on ? `\x1b[${code}m${text}\x1b[0m` : text;

/** Visible width of a string that may hold ANSI colour codes. */
export function visibleLength(text: string): number {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI escape sequences
  return text.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "").length;
}

/** A plain-text table: the first row is the header, columns padded to their widest cell. */
export function table(rows: string[][], indent = "  "): string {
  const widths: number[] = [];
  for (const row of rows)
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, visibleLength(cell));
    });
  return rows
    .map(
      (row) =>
        indent +
        row
          .map((cell, i) =>
            i === row.length - 1 ? cell : cell + " ".repeat((widths[i] ?? 0) - visibleLength(cell)),
          )
          .join("   ")
          .trimEnd(),
    )
    .join("\n");
}

export interface SummaryNumbers {
  reRegistered: number;
  expectedReRegistrations: number;
  failedRegistrations: number;
  failedWithRevokedToken: number;
  tokensCreated: number;
  tokensRevoked: number;
  managedValid: TokenFacts[];
  unmanagedValid: TokenFacts[];
  alerts: number;
}

export function summaryNumbers(facts: RunFacts, results: InvariantResult[]): SummaryNumbers {
  const since = facts.worldReadyAt.getTime();
  const during = facts.registrations.filter((r) => r.at.getTime() >= since);
  const instances = facts.groups.reduce((n, g) => n + g.instances, 0);
  return {
    reRegistered: during.filter((r) => r.ok).length,
    expectedReRegistrations: instances * facts.rotations.length,
    failedRegistrations: during.filter((r) => !r.ok).length,
    failedWithRevokedToken:
      results.find((r) => r.id === "no-registration-with-revoked-token")?.explanations.length ?? 0,
    tokensCreated: facts.tokens.filter((t) => t.versionId && t.createdAt.getTime() >= since).length,
    tokensRevoked: facts.tokens.filter((t) => t.revokedAt).length,
    managedValid: facts.tokens.filter((t) => t.versionId && t.valid),
    unmanagedValid: facts.tokens.filter((t) => !t.versionId && t.valid),
    alerts: facts.alerts.length,
  };
}

export function renderSummary(
  facts: RunFacts,
  results: InvariantResult[],
  outcome: Outcome,
  options: RenderOptions = {},
): string {
  const { color } = options;
  const out: string[] = [];
  const rotations = facts.rotations;
  const rel = (from: Date | undefined, to: Date | undefined) =>
    from && to ? `+${seconds(Math.max(0, to.getTime() - from.getTime()))}` : "—";
  const footnotes: string[] = [];

  const rows: string[][] = [["phase", ...rotations.map((r) => `rotation ${r.index}`)]];
  rows.push(["secret version", ...rotations.map((r) => short(r.versionId))]);
  rows.push([
    "promotion (rotate-secret → 4 steps)",
    ...rotations.map((r) =>
      r.promotedAt
        ? `${seconds(r.promotedAt.getTime() - r.startedAt.getTime())}${r.attempts > 1 ? ` (${r.attempts} attempts)` : ""}`
        : `failed${r.error ? "" : ""}`,
    ),
  ]);
  for (const region of facts.replicaRegions) {
    rows.push([
      `replica ${region} in sync`,
      ...rotations.map((r) =>
        r.replicasInSyncAt[region] ? rel(r.promotedAt, r.replicasInSyncAt[region]) : "—",
      ),
    ]);
  }
  for (const g of facts.groups) {
    rows.push([
      `refresh ${groupKey(g)}`,
      ...rotations.map((r) => {
        const refresh = refreshFor(facts, r, g);
        if (!refresh) return "—";
        const span = `${rel(r.promotedAt, refresh.startTime)} → ${refresh.endTime ? rel(r.promotedAt, refresh.endTime) : "…"}`;
        return refresh.status === "Successful"
          ? `${span} ${paint(color, "32", "ok")}`
          : `${span} ${paint(color, "31", refresh.status)}`;
      }),
    ]);
  }
  rows.push([
    "promotion → revocation",
    ...rotations.map((r) => {
      const next = rotations.find((x) => x.index === r.index + 1);
      const revoked = facts.tokens.filter(
        (t) =>
          t.versionId &&
          t.revokedAt &&
          r.promotedAt &&
          t.revokedAt.getTime() >= r.promotedAt.getTime() &&
          (!next || t.revokedAt.getTime() < next.startedAt.getTime()),
      );
      if (revoked.length > 0) {
        const latest = Math.max(...revoked.map((t) => t.revokedAt?.getTime() ?? 0));
        return `${rel(r.promotedAt, new Date(latest))} (${revoked.map((t) => short(t.id)).join(", ")})`;
      }
      const older = facts.tokens.some(
        (t) => t.versionId && t.versionId !== r.versionId && t.createdAt.getTime() < r.startedAt.getTime(),
      );
      if (!older) {
        if (!footnotes.includes("initial")) footnotes.push("initial");
        return "none¹";
      }
      return "none (blocked)";
    }),
  ]);
  rows.push([
    "reconcile runs (failed)",
    ...rotations.map((r) => `${r.reconcileRuns} (${r.reconcileFailures})`),
  ]);

  const n = summaryNumbers(facts, results);
  const initial = facts.tokens.find((t) => t.initial);
  const totals: string[][] = [
    [
      "run time",
      `${seconds(facts.endedAt.getTime() - facts.startedAt.getTime())} (start-up ${seconds(facts.worldReadyAt.getTime() - facts.startedAt.getTime())})`,
    ],
    [
      "agents re-registered",
      `${n.reRegistered} (${facts.groups.reduce((x, g) => x + g.instances, 0)} instances × ${rotations.length} rotation(s) = ${n.expectedReRegistrations} expected for a complete run)`,
    ],
    ["failed registrations", `${n.failedRegistrations} (with a revoked token: ${n.failedWithRevokedToken})`],
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

  out.push("", paint(color, "1", "Summary"), table(rows), "", table(totals), "");
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
  out.push("", paint(color, "1", "Safety invariants"));
  for (const r of results) {
    out.push(`  ${r.ok ? paint(color, "32", "✓") : paint(color, "31", "✗")} ${r.rule}`);
    for (const e of r.explanations) out.push(`      ${paint(color, "31", e)}`);
  }
  if (outcome.kind === "blocked") {
    out.push(
      "",
      paint(color, "33", "Why the rollout stopped"),
      ...explainBlocked(facts).map((l) => `  ${l}`),
    );
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
  }
  lines.push(
    "Some instances may still hold the previous token, so reconcile revokes nothing and alerts once;",
    "agents keep working with either token. In AWS an operator fixes the cause, removes the group's",
    "refresh marker tag, and the next reconcile run starts a new refresh and finishes the rollout.",
  );
  for (const a of facts.alerts) lines.push(`Alert sent (full text above): ${a.subject ?? "(no subject)"}`);
  return lines;
}

/** How many times any of `secrets` occurs in `texts`. */
export function countTokenLeaks(texts: readonly string[], secrets: readonly string[]): number {
  let n = 0;
  for (const secret of secrets) {
    if (secret.length < 8) continue;
    for (const text of texts) {
      let from = 0;
      for (;;) {
        const i = text.indexOf(secret, from);
        if (i < 0) break;
        n++;
        from = i + secret.length;
      }
    }
  }
  return n;
}
