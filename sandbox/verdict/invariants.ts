/**
 * The safety invariants of a rotation: the repository's safety specification, checked from what
 * the local servers recorded (never from what the functions claim). Pure over `RunFacts`.
 *
 * They hold for both rollout strategies (README "The ledger: when a token may be revoked"): what
 * matters is what every instance's agent cfg held when a token was revoked, not how it came to
 * hold it. Each result names one rule and explains every violation in a sentence.
 */
import { describeCfg, finalRotation, groupKey, type RunFacts, seconds, short, syncedAt } from "./facts";

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

const MAX_EXPLANATIONS = 5;
const capped = (lines: string[]): string[] =>
  lines.length > MAX_EXPLANATIONS
    ? [...lines.slice(0, MAX_EXPLANATIONS), `… and ${lines.length - MAX_EXPLANATIONS} more`]
    : lines;

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
