/**
 * What a sandbox run recorded, as plain data: the scenario gathers `RunFacts` from what the local
 * servers recorded (never from what the functions claim), and the verdict judges (invariants.ts,
 * outcome.ts) and renders (render.ts) them. The facts hold no token value: cfg files are recorded by
 * the id of the Buildkite token they hold. Here too: the small queries every judge shares.
 */
import { secondsText, short as shortId } from "../../shared/lib/terminal";
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

/** The first 8 characters of an id, "?" when there is none. */
export const short = (id: string | undefined | null): string => shortId(id, "?");
export const seconds = secondsText;
export const groupKey = (g: { region: string; groupName?: string; name?: string }) =>
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

export function finalRotation(facts: Pick<RunFacts, "rotations">): RotationFacts | undefined {
  return facts.rotations[facts.rotations.length - 1];
}

/** When `region` was first seen serving the rotation's version (the primary: at promotion). */
export function syncedAt(facts: Pick<RunFacts, "primaryRegion">, rotation: RotationFacts, region: string) {
  return region === facts.primaryRegion ? rotation.promotedAt : rotation.replicasInSyncAt[region];
}

/** A cfg's token in words. */
export const describeCfg = (id: string | null) =>
  id === null
    ? "no token yet"
    : id === "foreign"
      ? "a token of no version of this secret"
      : `token ${short(id)}`;

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
