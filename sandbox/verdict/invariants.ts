/**
 * What `npm run sandbox` concludes from a run: the safety invariants (checked from what the local
 * servers recorded, never from what the functions claim), the outcome and its exit code, and the
 * summary table. Everything here is pure: the scenario gathers `RunFacts` (which hold no token
 * value: cfg files are recorded by the id of the Buildkite token they hold), these functions judge
 * and render them.
 *
 * The invariants hold for both rollout strategies (README "The ledger: when a token may be
 * revoked"): what matters is what every instance's agent cfg held when a token was revoked, not
 * how it came to hold it.
 */

export type Expectation = "complete" | "blocked";
export type Strategy = "in-place" | "refresh";

/** What the fleet stand-in counted during one rotation (differences of `Fleet.counters()`). */
export interface FleetDelta {
  /** Instances the rollout replaced (refresh replacements, API terminations); natural churn apart. */
  replacedByRollout: number;
  /** Jobs running on an instance when something other than its idle agent ended it. */
  jobsInterrupted: number;
  /** Natural churn: idle agents that terminated themselves, and the launches that replaced them. */
  selfTerminated: number;
  churnLaunches: number;
  failedRegistrations: number;
  agentRestarts: number;
  /** Run Command invocations of the install document requested during the rotation, and how many failed. */
  installInvocations: number;
  installFailures: number;
}

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
  /** An instance whose SSM agent was made unreachable at the start of this rotation. */
  ssmOutage: { region: string; instanceId: string; restoredAt: Date | undefined } | undefined;
  reconcileRuns: number;
  reconcileFailures: number;
  schedulesFired: number;
  /** The follow-up stopped at its time bound rather than at completion or a blocked state. */
  timedOut: boolean;
  endedAt: Date | undefined;
  /** Undefined when the rotation never got as far as a version. */
  fleet: FleetDelta | undefined;
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

/**
 * One instance's agent cfg file as read from disk at some instant. `cfgTokenId` is the id of the
 * Buildkite token whose value the `token=` line holds, `null` when there is no cfg or no token line
 * yet (user data has not written it), `"foreign"` when the value is no token of the cluster.
 */
export interface CfgFacts {
  region: string;
  groupName: string;
  instanceId: string;
  platform: string;
  lifecycleState: string;
  bootFinished: boolean;
  launchTime: Date;
  cfgTokenId: string | null;
}

/** Every live instance's cfg, read synchronously when the Buildkite API revoked `tokenId`. */
export interface RevocationFacts {
  tokenId: string;
  at: Date;
  instances: CfgFacts[];
}

export interface GroupFacts {
  region: string;
  /** The Auto Scaling group (the stack's generated `<stack>-AgentAutoScaleGroup-<random>`). */
  name: string;
  stackName: string;
  platform: string;
  instances: number;
  busyAtStart: number;
}

export interface AlertFacts {
  subject: string | undefined;
  message: string;
}

export interface RunFacts {
  expect: Expectation;
  strategy: Strategy;
  /** With `expect: "blocked"`: what the one alert must name (a region or an instance id). */
  blockedOn: { kind: "region" | "instance"; name: string } | undefined;
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
  /** The cfg snapshot taken at each revocation, in order. */
  revocations: RevocationFacts[];
  /** Every instance's cfg at the end of the run. */
  finalCfgs: CfgFacts[];
  alerts: AlertFacts[];
  /** Faults injected by --replica-lag / --buildkite-flaky (--fail-refresh is `failRefreshRegion`). */
  injected: { replicaLagSeconds: number | undefined; buildkiteFlaky: boolean };
  /** Requests the Buildkite API stand-in answered, and how many of them failed (429, 5xx, dropped). */
  buildkiteRequests: { total: number; failed: number };
  /** Token values (agent tokens and the API token) found in the output, the handlers' logs or Run Command output. */
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
const MAX_EXPLANATIONS = 5;
const capped = (lines: string[]): string[] =>
  lines.length > MAX_EXPLANATIONS
    ? [...lines.slice(0, MAX_EXPLANATIONS), `… and ${lines.length - MAX_EXPLANATIONS} more`]
    : lines;

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

/** When `region` was first seen serving the rotation's version (the primary: at promotion). */
export function syncedAt(facts: Pick<RunFacts, "primaryRegion">, rotation: RotationFacts, region: string) {
  return region === facts.primaryRegion ? rotation.promotedAt : rotation.replicasInSyncAt[region];
}

/** Rotation index of the version a token was made for: 0 for the initial and any unmanaged token. */
function tokenAge(facts: RunFacts): (tokenId: string | null) => number | undefined {
  const byVersion = new Map(
    facts.rotations.flatMap((r) => (r.versionId ? [[r.versionId, r.index] as const] : [])),
  );
  const tokens = new Map(facts.tokens.map((t) => [t.id, t]));
  return (tokenId) => {
    const token = tokenId ? tokens.get(tokenId) : undefined;
    if (!token) return undefined;
    return token.versionId ? (byVersion.get(token.versionId) ?? 0) : 0;
  };
}

/**
 * Instances of the target groups that are not safe for the final version at the end: their cfg
 * does not hold its token, and they did not launch after their region served it (README "The
 * ledger"). Instances on their way out (Terminating) are not counted.
 */
export function unsafeForFinal(facts: RunFacts): string[] {
  const last = finalRotation(facts);
  if (!last?.versionId) return ["no final version"];
  const token = facts.tokens.find((t) => t.versionId === last.versionId);
  return facts.finalCfgs.flatMap((i) => {
    if (i.lifecycleState === "Terminating") return [];
    if (token && i.cfgTokenId === token.id) return [];
    const synced = syncedAt(facts, last, i.region);
    if (synced && i.launchTime.getTime() >= synced.getTime()) return [];
    return [
      `${groupKey(i)} instance ${i.instanceId} (${i.platform}) is not safe for version ${short(last.versionId)}: its cfg holds ${describeCfg(i.cfgTokenId)} and it launched before its region served the version`,
    ];
  });
}

const describeCfg = (id: string | null) =>
  id === null
    ? "no token yet"
    : id === "foreign"
      ? "a token of no version of this secret"
      : `token ${short(id)}`;

/** True when the final rotation rolled out: only its token is left and every instance is safe for it. */
export function rolloutComplete(facts: RunFacts): boolean {
  const last = finalRotation(facts);
  if (!last?.versionId || last.error) return false;
  const managedValid = facts.tokens.filter((t) => t.versionId && t.valid);
  return (
    managedValid.length === 1 &&
    managedValid[0]?.versionId === last.versionId &&
    unsafeForFinal(facts).length === 0
  );
}

export function checkInvariants(facts: RunFacts): InvariantResult[] {
  const results: InvariantResult[] = [];
  const check = (id: string, rule: string, explanations: string[]) =>
    results.push({ id, rule, ok: explanations.length === 0, explanations });
  const tokenById = new Map(facts.tokens.map((t) => [t.id, t]));
  const age = tokenAge(facts);
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
  check(
    "no-registration-with-revoked-token",
    "no agent failed to register because its token was revoked",
    capped(refused),
  );

  // 2. At each revocation: no live cfg held the revoked token, every booting instance had read a newer one.
  const early: string[] = [];
  for (const revocation of facts.revocations) {
    const revokedAge = age(revocation.tokenId) ?? 0;
    const when = at(revocation.at);
    for (const i of revocation.instances) {
      const where = `${groupKey(i)} instance ${i.instanceId}`;
      if (i.cfgTokenId === revocation.tokenId) {
        early.push(
          `token ${short(revocation.tokenId)} was revoked at ${when} while ${where}'s cfg still held it: an agent restart there would fail to register`,
        );
        continue;
      }
      if (i.bootFinished) continue;
      if (i.cfgTokenId !== null) {
        const cfgAge = age(i.cfgTokenId);
        if (cfgAge === undefined || cfgAge <= revokedAge) {
          early.push(
            `${where} was booting at ${when} with ${describeCfg(i.cfgTokenId)}, not a newer token than the revoked ${short(revocation.tokenId)}`,
          );
        }
        continue;
      }
      // Not written yet: safe only if it launched after its region served a newer version.
      const newer = facts.rotations.filter((r) => r.index > revokedAge);
      const readNewer = newer.some((r) => {
        const synced = syncedAt(facts, r, i.region);
        return synced !== undefined && i.launchTime.getTime() >= synced.getTime();
      });
      if (!readNewer) {
        early.push(
          `${where} was booting at ${when} (cfg not written yet) and launched before its region served a token newer than the revoked ${short(revocation.tokenId)}`,
        );
      }
    }
  }
  check(
    "no-cfg-holds-revoked-token",
    "at every revocation, no running instance's cfg held the revoked token and every booting instance had read a newer one",
    capped(early),
  );

  // 3. At the end every cfg could register again: the token it holds is still valid.
  const stranded = facts.finalCfgs.flatMap((i) => {
    if (i.lifecycleState === "Terminating") return [];
    if (i.cfgTokenId === null) {
      return i.bootFinished
        ? [`${groupKey(i)} instance ${i.instanceId} finished booting without a token in its cfg`]
        : [];
    }
    const token = tokenById.get(i.cfgTokenId);
    if (token?.valid) return [];
    return [
      `${groupKey(i)} instance ${i.instanceId}'s cfg holds ${describeCfg(i.cfgTokenId)}, which is ${token ? "no longer valid" : "unknown to the cluster"}: an agent restart there would not register`,
    ];
  });
  check(
    "cfgs-hold-valid-tokens",
    "at the end every running instance's cfg holds a token that is still valid (an agent restart would register)",
    capped(stranded),
  );

  // 4. Tokens this project did not make are never revoked; what must be valid at the end.
  check(
    "foreign-token-never-revoked",
    "a token this project did not make is never revoked",
    facts.tokens
      .filter((t) => !t.versionId && t.revokedAt)
      .map(
        (t) =>
          `token ${short(t.id)} ("${t.description}") was not created by this project, yet it was revoked at ${t.revokedAt ? at(t.revokedAt) : "?"}`,
      ),
  );
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

  // 5. Never a token value in anything printed, logged or returned by Run Command.
  check(
    "no-token-in-output",
    "no token value appears in the output, the handlers' logs or any Run Command output",
    facts.tokenLeaks > 0
      ? [
          `${facts.tokenLeaks} occurrence(s) of a token value in the output, the handlers' logs or Run Command output`,
        ]
      : [],
  );

  // 6. The rollout itself (complete) or the alert (blocked).
  if (facts.expect === "complete") {
    const problems: string[] = [];
    for (const r of facts.rotations) if (r.error) problems.push(`rotation ${r.index} failed: ${r.error}`);
    if (last && !last.error) {
      const unsafe = unsafeForFinal(facts);
      problems.push(...capped(unsafe));
      if (unsafe.length > 0 && last.timedOut) {
        problems.push(
          `gave up waiting after ${seconds((last.endedAt?.getTime() ?? 0) - last.startedAt.getTime())}`,
        );
      }
    }
    check(
      "every-instance-safe-for-final",
      "every instance of every target group is safe for the final version (its cfg holds it, or it launched after its region served it)",
      problems,
    );
  } else {
    const name = facts.blockedOn?.name ?? facts.failRefreshRegion ?? "";
    const alerts = facts.alerts;
    const named =
      alerts.length === 1 && `${alerts[0]?.subject ?? ""}\n${alerts[0]?.message ?? ""}`.includes(name);
    check(
      "alerted-once",
      `the blocked rollout raised exactly one alert, naming ${facts.blockedOn?.kind ?? "region"} ${name}`,
      named
        ? []
        : [
            `${alerts.length} alert(s) received${alerts.length > 0 ? `: ${alerts.map((a) => `"${a.subject ?? "(no subject)"}"`).join(", ")}` : ""}${alerts.length === 1 ? `, not naming ${name}` : ""}`,
          ],
    );
  }

  // 7. The in-place path replaces nothing and interrupts nothing (natural churn is counted apart).
  if (facts.strategy === "in-place") {
    check(
      "in-place-replaced-nothing",
      "in place: 0 instances replaced by the rollout and 0 jobs interrupted, in every rotation",
      facts.rotations.flatMap((r) =>
        r.fleet && (r.fleet.replacedByRollout > 0 || r.fleet.jobsInterrupted > 0)
          ? [
              `rotation ${r.index}: ${r.fleet.replacedByRollout} instance(s) replaced by the rollout, ${r.fleet.jobsInterrupted} job(s) interrupted`,
            ]
          : [],
      ),
    );
  }
  return results;
}

export function violationsOf(results: InvariantResult[]): Violation[] {
  return results.flatMap((r) => r.explanations.map((explanation) => ({ invariant: r.id, explanation })));
}

/** Why the final rotation did not roll out, in one clause. */
function whyIncomplete(facts: RunFacts): string {
  const last = finalRotation(facts);
  if (!last) return "no rotation ran";
  if (last.error) return `rotation ${last.index} failed: ${last.error}`;
  const failed = facts.groups.flatMap((g) => {
    const refresh = refreshFor(facts, last, g);
    return refresh && refresh.status !== "Successful" ? [`${groupKey(g)} (${refresh.status})`] : [];
  });
  if (failed.length > 0) return `the instance refresh of ${failed.join(", ")} did not succeed`;
  const outage = last.ssmOutage;
  if (outage && !outage.restoredAt) {
    return `instance ${outage.instanceId} (${outage.region}) cannot be reached by SSM Run Command, so its cfg still holds the previous token`;
  }
  return "the rollout did not finish in time";
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
    const designed = facts.expect === "blocked" ? "rollout blocked as designed" : "rollout did not complete";
    return {
      exitCode: EXIT.incomplete,
      kind: "blocked",
      headline: `sandbox: ${designed} — ${whyIncomplete(facts)}; the previous token stays valid, ${facts.alerts.length} alert(s) sent; no token was revoked early (exit 2)`,
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
      `replicas lagged ${facts.injected.replicaLagSeconds} s (in sync at most ${Math.max(0, ...lags).toFixed(1)} s after promotion; no instance was asked to update before its region served the new token)`,
    );
  }
  if (facts.injected.buildkiteFlaky) {
    faults.push(
      `the Buildkite API failed ${facts.buildkiteRequests.failed} of ${facts.buildkiteRequests.total} requests and every idempotent call was retried (token creation never blindly)`,
    );
  }
  const n = totals(facts);
  const how =
    facts.strategy === "in-place"
      ? `in place (${n.replaced} instances replaced by the rollout, ${n.interrupted} jobs interrupted)`
      : `by instance refresh (${n.replaced} instances replaced by the rollout, ${n.interrupted} jobs interrupted)`;
  if (faults.length > 0) {
    return {
      exitCode: EXIT.degraded,
      kind: "degraded",
      headline: `sandbox: rolled out ${how} despite injected faults — ${faults.join("; ")}; ${facts.alerts.length} alert(s) sent; every safety invariant held (exit 3)`,
    };
  }
  return {
    exitCode: EXIT.complete,
    kind: "complete",
    headline: `sandbox: OK — ${facts.rotations.length} rotation(s) rolled out ${how} to ${instances} instances in ${facts.groups.length} stacks across ${1 + facts.replicaRegions.length} regions, ${n.failedRegistrations} failed registrations; every safety invariant held (exit 0)`,
  };
}

function totals(facts: RunFacts) {
  const sum = (f: (d: FleetDelta) => number) =>
    facts.rotations.reduce((n, r) => n + (r.fleet ? f(r.fleet) : 0), 0);
  return {
    replaced: sum((d) => d.replacedByRollout),
    interrupted: sum((d) => d.jobsInterrupted),
    failedRegistrations: sum((d) => d.failedRegistrations),
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
  /** Over all rotations (per rotation: `RotationFacts.fleet`). */
  replacedByRollout: number;
  jobsInterrupted: number;
  failedRegistrations: number;
  failedWithRevokedToken: number;
  /** Successful registrations after start-up (agent restarts, new instances). */
  registrations: number;
  tokensCreated: number;
  tokensRevoked: number;
  managedValid: TokenFacts[];
  unmanagedValid: TokenFacts[];
  alerts: number;
}

export function summaryNumbers(facts: RunFacts, results: InvariantResult[]): SummaryNumbers {
  const since = facts.worldReadyAt.getTime();
  const during = facts.registrations.filter((r) => r.at.getTime() >= since);
  const n = totals(facts);
  return {
    replacedByRollout: n.replaced,
    jobsInterrupted: n.interrupted,
    failedRegistrations: during.filter((r) => !r.ok).length,
    failedWithRevokedToken:
      results.find((r) => r.id === "no-registration-with-revoked-token")?.explanations.length ?? 0,
    registrations: during.filter((r) => r.ok).length,
    tokensCreated: facts.tokens.filter((t) => t.versionId && t.createdAt.getTime() >= since).length,
    tokensRevoked: facts.tokens.filter((t) => t.revokedAt).length,
    managedValid: facts.tokens.filter((t) => t.versionId && t.valid),
    unmanagedValid: facts.tokens.filter((t) => !t.versionId && t.valid),
    alerts: facts.alerts.length,
  };
}

/** The first revocation of a managed token after the rotation's promotion (and before the next rotation). */
export function revocationOf(
  facts: RunFacts,
  rotation: RotationFacts,
): { at: Date; tokenIds: string[] } | undefined {
  const next = facts.rotations.find((x) => x.index === rotation.index + 1);
  const promoted = rotation.promotedAt?.getTime();
  if (promoted === undefined) return undefined;
  const revoked = facts.tokens.filter(
    (t) =>
      t.versionId &&
      t.revokedAt &&
      t.revokedAt.getTime() >= promoted &&
      (!next || t.revokedAt.getTime() < next.startedAt.getTime()),
  );
  if (revoked.length === 0) return undefined;
  const latest = Math.max(...revoked.map((t) => t.revokedAt?.getTime() ?? 0));
  return { at: new Date(latest), tokenIds: revoked.map((t) => t.id) };
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
  const perRotation = (label: string, cell: (r: RotationFacts) => string) =>
    rows.push([label, ...rotations.map(cell)]);
  const fleetCell = (f: (d: FleetDelta) => string) => (r: RotationFacts) => (r.fleet ? f(r.fleet) : "—");

  const rows: string[][] = [["per rotation", ...rotations.map((r) => `rotation ${r.index}`)]];
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
        ? `${span} ${paint(color, "32", "ok")}`
        : `${span} ${paint(color, "31", refresh.status)}`;
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

  out.push("", paint(color, "1", "Summary"), table(rows), "", table(totalsRows), "");
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
