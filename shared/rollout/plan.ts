import type { RefreshPreferences } from "../lib/config";
import { allSafe, instanceLedger, type LedgerSettings } from "./ledger";
import { alertId, retryRefreshAdvice } from "./markers";
import { BLOCKED_PHASES, DONE_PHASES, REFRESH_PHASES, targetGroupOf } from "./model";
import type {
  Action,
  EmergencyDeclaration,
  InstanceStatus,
  Observation,
  Plan,
  PlanSettings,
  RefreshObservation,
  StartRefreshAction,
  TargetObservation,
  TargetStatus,
} from "./types";

/** Refresh states in which the group is still changing: never start another one then. */
export const ACTIVE_REFRESH = new Set([
  "Pending",
  "InProgress",
  "Cancelling",
  "RollbackInProgress",
  "Baking",
]);
/** Terminal states that did not replace every instance: revocation is blocked until an operator acts. */
export const FAILED_REFRESH = new Set(["Failed", "Cancelled", "RollbackFailed", "RollbackSuccessful"]);

export { EMERGENCY_TAG, MARKER_TAG, ROLLOUT_TAG, SYNC_TAG } from "./markers";
/** How far ahead an expiring current token is reported. */
export const EXPIRY_WARNING_MS = 86_400_000;
/** SendCommand takes at most 50 instance ids (AWS Systems Manager API reference, SendCommand InstanceIds). */
export const SEND_COMMAND_MAX_INSTANCES = 50;
/**
 * The writes a plan of a partial observation may make: each concerns only groups it observed.
 * Revoking, alerting, stopping agents and recording the rollout need the full observation.
 */
export const PARTIAL_ACTIONS: ReadonlySet<Action["kind"]> = new Set([
  "record-sync",
  "send-command",
  "start-refresh",
  "adopt-refresh",
]);
/** The writes a plan of a poll may make (see Observation.scope). */
export const POLL_ACTIONS: ReadonlySet<Action["kind"]> = new Set(["send-command"]);
/** Clock difference tolerated between a recorded intent and the refresh AWS reports starting for it. */
const INTENT_SKEW_MS = 5_000;

type Alert = Omit<Extract<Action, { kind: "alert" }>, "kind">;

/** What every per-group decision of one plan() call shares; `alerts` and `actions` collect its output. */
interface PlanContext {
  obs: Observation;
  settings: PlanSettings;
  version: string;
  /** The preferences a refresh of this rollout uses (an emergency's, or the configured ones). */
  preferences: RefreshPreferences;
  promotedAt: Date | undefined;
  alerts: Alert[];
  actions: Action[];
}

/**
 * The whole decision of a reconcile run, as a pure function of what was observed. Its one promise:
 * a token is revoked only when every instance of every target group is safe for the current version
 * (booted after its region served it, confirmed in place, or gone — see ledger.ts) and every region
 * serves it — and then every token this project made for the secret, other than AWSCURRENT's and
 * AWSPENDING's, is revoked. Every write the run makes is an action of the plan.
 */
export function plan(obs: Observation, settings: PlanSettings): Plan {
  return boundStarts(planObserved(obs, settings), settings.maxStartsPerRound);
}

/**
 * Keeps the first `max` refresh starts and defers the others to the run's next rounds: starting a
 * thousand refreshes in one go would hold the trigger queue for as long as they take. The deferred
 * groups stay in phase start-refresh, so nothing is complete.
 */
function boundStarts(p: Plan, max: number | undefined): Plan {
  const starts = p.actions.filter((a): a is StartRefreshAction => a.kind === "start-refresh");
  if (max === undefined || starts.length <= max) return p;
  const deferred = starts.slice(max);
  const later = new Set<Action>(deferred);
  return {
    ...p,
    actions: p.actions.filter((a) => !later.has(a)),
    deferredStarts: deferred,
    complete: false,
  };
}

/**
 * The next round of a plan whose starts were bounded: its next `max` deferred starts, decided on the
 * same observation, and nothing else (the plan's other writes were made in its first round; its
 * notices were reported then). Carrying on without looking again is as safe as the first round was:
 * in between only this run writes for this version, a refresh someone else started meanwhile makes
 * StartInstanceRefresh fail (InstanceRefreshInProgress, which act leaves to the next run), and a
 * newer version only means the instances boot with a newer token. The caller bounds how old the
 * observation may be (rounds.ts ONE_LOOK_MS).
 */
export function continueStarts(p: Plan, max: number | undefined): Plan {
  const next = max === undefined ? p.deferredStarts : p.deferredStarts.slice(0, max);
  return {
    ...p,
    actions: next,
    notices: [],
    deferredStarts: p.deferredStarts.slice(next.length),
    complete: false,
  };
}

function planObserved(obs: Observation, settings: PlanSettings): Plan {
  const whole = planWhole(obs, settings);
  if (obs.scope === "full") return whole;
  // A partial observation saw only some groups (and the anchor's record of alerts sent): it makes
  // their writes and sends the alerts about them; what concerns the whole fleet (revocation,
  // completion, the budget, what stayed unobservable) waits for a full observation.
  const allowed = obs.scope === "poll" ? POLL_ACTIONS : PARTIAL_ACTIONS;
  const kept = whole.actions.filter(
    (a) => allowed.has(a.kind) || (a.kind === "alert" && !FLEET_ALERTS.has(alertKind(a.key))),
  );
  const deferred = whole.actions.filter((a) => a.kind === "alert" && FLEET_ALERTS.has(alertKind(a.key)));
  const alerting = kept.some((a) => a.kind === "alert");
  return {
    ...whole,
    actions: [
      ...kept,
      ...(alerting && whole.versionId
        ? [
            {
              kind: "record-rollout" as const,
              versionId: whole.versionId,
              complete: false,
              // As recorded: a partial look can neither clear nor start these.
              unobservableSince: obs.rollout.unobservableSince,
              observedAt: obs.rollout.observedAt,
            },
          ]
        : []),
    ],
    complete: false,
    deferredAlerts: deferred.length,
  };
}

/** Alerts about the whole fleet: a partial plan holds them back for the next full observation. */
const FLEET_ALERTS: ReadonlySet<string> = new Set(["budget", "unobservable", "token-expiring"]);
const alertKind = (key: string) => key.split(":")[0] ?? key;

function planWhole(obs: Observation, settings: PlanSettings): Plan {
  const version = obs.secret.current;
  const unmanaged = obs.tokens.filter((t) => t.versionId === undefined);
  const notices: string[] = [];
  const base = {
    strategy: settings.strategy,
    regionsBehind: [],
    regionsLagging: [],
    actions: [],
    escalate: undefined,
    deferredAlerts: 0,
    deferredStarts: [],
  };
  if (unmanaged.length > 0) {
    notices.push(
      `${unmanaged.length} token(s) in the cluster were not created by this project and are never revoked by it: ${unmanaged
        .map((t) => `${t.id} ("${t.description}")`)
        .join(
          ", ",
        )}. Revoke the one this secret held before its first rotation by hand once the first rollout is complete.`,
    );
  }
  if (!version) {
    return {
      ...base,
      versionId: undefined,
      targets: [],
      waitingFor: ["operator"],
      notices: [...notices, "the secret has no AWSCURRENT version"],
      complete: false,
    };
  }

  if (obs.scope !== "full" && obs.managedVersion !== version) {
    // Whether the version is ours is known from the Buildkite tokens, which only a full observation lists.
    return {
      ...base,
      versionId: version,
      targets: [],
      waitingFor: [],
      notices,
      complete: false,
      escalate: `version ${version} was not yet seen in a full observation in this container`,
    };
  }
  if (obs.scope === "full" && !obs.tokens.some((t) => t.versionId === version)) {
    // Not a version this project made (the initial token, or a value set by hand): rolling it out
    // would touch every fleet for nothing, and revoking anything could strand the instances that
    // still use it. Report, never guess.
    return {
      ...base,
      versionId: version,
      targets: obs.targets.map((t) => ({
        ...targetBase(t),
        phase: "unmanaged",
        detail: "the current version was not created by this project; nothing to roll out",
      })),
      waitingFor: [],
      notices: [
        ...notices,
        `the current version ${version} has no token created by this project (the initial token, or set by hand): nothing is rolled out or revoked until the next rotation`,
      ],
      complete: false,
    };
  }

  const alerts: Alert[] = [];
  const actions: Action[] = [];
  const emergency = validEmergency(obs, version, alerts);
  const inPlace = settings.strategy === "in-place" || emergency !== undefined;
  // A leaked token: replace protected (busy) instances too, and accept less healthy capacity.
  const preferences: RefreshPreferences = emergency
    ? {
        ...settings.preferences,
        minHealthyPercentage: emergency.minHealthyPercentage,
        scaleInProtectedInstances: "Refresh",
      }
    : settings.preferences;
  const promotedAt = rolloutStartedAt(obs);
  const ageSeconds = promotedAt ? (obs.now.getTime() - promotedAt.getTime()) / 1000 : 0;

  // Things we could not observe this run. A definitive answer is reported at once; a transient one
  // only once it has lasted past the alert threshold (its start survives in the rollout tag).
  const transient: string[] = [];

  // Replicas: a region serves the new token only when asked directly returns the new version id.
  const replicaByRegion = new Map(obs.replicas.map((r) => [r.region, r]));
  const inSync = (region: string) =>
    region === settings.primaryRegion || replicaByRegion.get(region)?.current === version;
  const regionsBehind = obs.replicas.filter((r) => r.current !== version).map((r) => r.region);
  const replicaFailed = (r: (typeof obs.replicas)[number]) =>
    r.replicationStatus === "Failed" || r.error?.definitive === true;
  const regionsLagging = obs.replicas
    .filter((r) => r.current !== version && !replicaFailed(r))
    .map((r) => r.region);
  for (const r of obs.replicas) {
    if (r.current === version) continue;
    if (replicaFailed(r)) {
      alerts.push({
        key: `replica-failed:${r.region}`,
        subject: `Buildkite token rollout blocked: ${r.region} does not serve the new token`,
        message: lines(
          `What: the replica of ${obs.secret.arn} in ${r.region} does not serve version ${version}: ${r.error?.message ?? r.statusMessage ?? "replication failed"}.`,
          `Effect: nothing is rolled out in ${r.region} and no old token is revoked, so agents keep working with the old token.`,
          `To do: check the replica (aws secretsmanager describe-secret --region ${r.region}), fix or re-create it; the next reconcile continues on its own.`,
        ),
      });
    } else if (r.error) {
      transient.push(`replica ${r.region}: ${r.error.message}`);
    } else if (ageSeconds > settings.replicaAlertSeconds) {
      alerts.push({
        key: `replica-slow:${r.region}`,
        subject: `Buildkite token rollout slow: ${r.region} still serves an old token`,
        message: lines(
          `What: ${Math.round(ageSeconds)} s after version ${version} was created, ${r.region} still serves ${r.current ?? "no version"} (replication status ${r.replicationStatus ?? "unknown"}).`,
          "Effect: the region's groups are not updated yet and no old token is revoked.",
          `To do: check replication of ${obs.secret.arn} to ${r.region}.`,
        ),
      });
    }
  }

  let stacksOk = true;
  for (const s of obs.stacks) {
    if (s.error) {
      stacksOk = false;
      if (s.error.definitive) {
        alerts.push({
          key: `stack-unobservable:${s.region}:${s.stackName}`,
          subject: `Buildkite token rollout blocked: stack cannot be read: ${s.stackName} (${s.region})`,
          message: lines(
            `What: the groups of the Elastic CI Stack ${s.stackName} in ${s.region} could not be listed: ${s.error.message}.`,
            "Effect: no old token is revoked.",
            "To do: check the reconcile function's permissions (autoscaling:DescribeAutoScalingGroups) and the TargetStacks parameter.",
          ),
        });
      } else transient.push(`stack ${s.region}:${s.stackName}: ${s.error.message}`);
    } else if (s.groups.length === 0) {
      stacksOk = false;
      alerts.push({
        key: `stack-missing:${s.region}:${s.stackName}`,
        subject: `Buildkite token rollout blocked: stack has no group: ${s.stackName} (${s.region})`,
        message: lines(
          `What: no Auto Scaling group in ${s.region} carries the tags aws:cloudformation:stack-name=${s.stackName} and aws:cloudformation:logical-id=AgentAutoScaleGroup.`,
          "Effect: no old token is revoked.",
          "To do: fix the TargetStacks parameter (region:stack-name list) and redeploy, or check the stack exists in that region.",
        ),
      });
    }
  }

  const ctx: PlanContext = { obs, settings, version, preferences, promotedAt, alerts, actions };
  const ledgerSettings: LedgerSettings = { inPlace, ...settings.inPlace, clockSkewMs: settings.clockSkewMs };
  const sends = new Map<string, string[]>();
  const targets: TargetStatus[] = obs.targets.map((t) => {
    const where = `${t.groupName} in ${t.region}`;
    if (t.error) {
      if (t.error.definitive) {
        alerts.push({
          key: `group-unobservable:${t.region}:${t.groupName}`,
          subject: `Buildkite token rollout blocked: group cannot be observed: ${t.groupName} (${t.region})`,
          message: lines(
            `What: ${where} could not be observed: ${t.error.message}.`,
            "Effect: no old token is revoked.",
            "To do: check the reconcile function's permissions for the group's region.",
          ),
        });
      } else transient.push(`${t.region}:${t.groupName}: ${t.error.message}`);
      return { ...targetBase(t), phase: "unknown", detail: `could not be observed: ${t.error.message}` };
    }
    if (!t.exists) {
      alerts.push({
        key: `group-missing:${t.region}:${t.groupName}`,
        subject: `Buildkite token rollout blocked: group not found: ${t.groupName} (${t.region})`,
        message: lines(
          `What: the target group ${t.groupName} does not exist in ${t.region}.`,
          "Effect: no old token is revoked.",
          "To do: fix the TargetGroups parameter (region:group-name list), or target the Elastic CI Stack by name with TargetStacks (its group's name changes when CloudFormation replaces it), and redeploy.",
        ),
      });
      return { ...targetBase(t), phase: "missing", detail: "group not found" };
    }
    // Before its region serves the new token, a command would read the old one and a refresh would
    // boot instances with it.
    if (!inSync(t.region)) {
      return {
        ...targetBase(t),
        phase: "waiting-for-replica",
        detail: "waiting for the region to serve the new version",
      };
    }
    if (t.badSyncTag !== undefined) {
      alerts.push({
        key: `bad-tag:${t.region}:${t.groupName}:sync:${t.badSyncTag}`,
        subject: `Buildkite token rollout: ignored an invalid tag on ${t.groupName} (${t.region})`,
        message: lines(
          `What: the tag buildkite-agent-token-rotation:synced on ${where} reads "${t.badSyncTag.slice(0, 120)}", which does not fit the observed world (another version, a time before the rollout or in the future).`,
          "Effect: it is ignored and rewritten with the time of this run, which only makes the rollout more careful.",
          "To do: find out who writes this project's tags (only the reconcile function should).",
        ),
      });
    }
    // First run that sees the region in sync: from now on, a launching instance reads the new token.
    const syncedAt = t.syncedAt ?? obs.now;
    if (t.syncedAt === undefined) {
      actions.push({ kind: "record-sync", target: targetGroupOf(t), versionId: version, at: obs.now });
    }
    const instances = instanceLedger(t.members, version, syncedAt, obs.now, ledgerSettings);
    for (const i of instances) {
      if (i.state === "to-send") sends.set(t.region, [...(sends.get(t.region) ?? []), i.instanceId]);
    }

    const status = inPlace ? inPlaceStatus(t, instances, ctx) : undefined;
    // The refresh strategy, an in-place fallback refresh, or an emergency's refresh of protected instances.
    const refreshWanted =
      settings.strategy === "refresh" ||
      emergency !== undefined ||
      (settings.inPlace.fallback === "refresh" && instances.some((i) => i.fallbackDue));
    if (!refreshWanted) return status ?? doneOrWaiting(t, instances, "updated");
    const refresh = refreshStatus(t, instances, ctx);
    // No refresh for a group the install command has already brought up to date.
    if (refresh.phase === "start-refresh" && !(status && DONE_PHASES.has(status.phase))) {
      actions.push({
        kind: "start-refresh",
        target: targetGroupOf(t),
        versionId: version,
        preferences,
        reason: emergency ? "emergency" : settings.strategy === "refresh" ? "strategy" : "fallback",
      });
    }
    if (settings.strategy === "refresh" && !emergency) return refresh;
    // In-place drives the outcome; a refresh running alongside it is shown while it runs.
    if (status && (DONE_PHASES.has(status.phase) || refresh.phase === "refreshed")) return status;
    return status && !["refreshing", "start-refresh"].includes(refresh.phase)
      ? status
      : { ...refresh, instances };
  });

  for (const [region, ids] of sends) {
    for (let i = 0; i < ids.length; i += SEND_COMMAND_MAX_INSTANCES) {
      actions.push({
        kind: "send-command",
        region,
        versionId: version,
        instanceIds: ids.slice(i, i + SEND_COMMAND_MAX_INSTANCES),
      });
    }
  }

  if (emergency) {
    const leaked = obs.tokens.filter((t) => t.versionId === emergency.leakedVersionId);
    // Revoking stops new registrations only; connected agents keep running. So it is safe as soon
    // as no region can hand the leaked token to a booting instance any more (and the cfgs are being
    // rewritten in place, so a restarting agent does not loop on it).
    if (regionsBehind.length === 0) {
      for (const t of leaked)
        actions.push({ kind: "revoke", tokenId: t.id, versionId: emergency.leakedVersionId });
    }
    if (leaked.length === 0) {
      notices.push(
        `emergency: no token created by this project belongs to the leaked version ${emergency.leakedVersionId} (already revoked, or made outside this project): if the leaked token is still valid, revoke it by hand in Buildkite`,
      );
    }
  }

  const complete = regionsBehind.length === 0 && stacksOk && targets.every((s) => DONE_PHASES.has(s.phase));
  if (complete) {
    const revoking = new Set(actions.flatMap((a) => (a.kind === "revoke" ? [a.tokenId] : [])));
    for (const token of obs.tokens) {
      if (revoking.has(token.id)) continue;
      if (token.versionId && token.versionId !== version && token.versionId !== obs.secret.pending) {
        actions.push({ kind: "revoke", tokenId: token.id, versionId: token.versionId });
      }
    }
  } else if (ageSeconds > settings.maxRolloutSeconds) {
    const open = targets
      .filter((s) => !DONE_PHASES.has(s.phase))
      .map((s) => `${s.region}:${s.groupName} (${s.phase})`);
    alerts.push({
      key: "budget",
      subject: "Buildkite token rollout is taking longer than its time budget",
      message: lines(
        `What: the rollout of version ${version} has run for ${Math.round(ageSeconds / 60)} min (budget ${Math.round(settings.maxRolloutSeconds / 60)} min).`,
        `Waiting for: ${[...regionsBehind.map((r) => `replica ${r}`), ...open].join(", ") || "nothing"}.`,
        "Effect: old tokens stay valid until every instance has the new one. To do: look at the groups listed.",
      ),
    });
  }

  const unobservableSince = transient.length === 0 ? undefined : (obs.rollout.unobservableSince ?? obs.now);
  if (
    unobservableSince &&
    (obs.now.getTime() - unobservableSince.getTime()) / 1000 > settings.replicaAlertSeconds
  ) {
    alerts.push({
      key: "unobservable",
      subject: "Buildkite token rollout blocked: parts of the fleet cannot be observed",
      message: lines(
        `What: since ${unobservableSince.toISOString()} these could not be observed: ${transient.join("; ")}.`,
        "Effect: no old token is revoked while anything is unobservable.",
        "To do: check for throttling (Auto Scaling and SSM share one request bucket per account and region) or service health in those regions.",
      ),
    });
  }

  // An expiring current token stops new registrations everywhere: say so a day ahead.
  const currentToken = obs.tokens.find((t) => t.versionId === version);
  const expiresAt = currentToken?.expiresAt ? Date.parse(currentToken.expiresAt) : Number.NaN;
  if (Number.isFinite(expiresAt) && expiresAt - obs.now.getTime() < EXPIRY_WARNING_MS) {
    const hours = Math.max(0, Math.round((expiresAt - obs.now.getTime()) / 3_600_000));
    alerts.push({
      key: `token-expiring:${version}`,
      subject: "Buildkite agent token expires soon: rotate now",
      message: lines(
        `What: the current agent token (${currentToken?.id}, version ${version}) expires at ${new Date(expiresAt).toISOString()}, in ${hours} h.`,
        "Effect: once it expires no new agent can register (connected agents keep running), so instances that boot or restart after that fail.",
        "To do: rotate now (bk-agent-token rotate, or aws secretsmanager rotate-secret), and make TOKEN_EXPIRY_SECONDS longer than the rotation interval plus the longest rollout.",
      ),
    });
  }

  const newAlerts = alerts.filter((a) => !obs.rollout.alertsSent.includes(alertId(a.key)));
  for (const a of newAlerts) actions.push({ kind: "alert", ...a });
  const unobservedChanged =
    (unobservableSince?.getTime() ?? 0) !== (obs.rollout.unobservableSince?.getTime() ?? 0);
  // Each write of the rollout tag also records when this full observation began: a cold container
  // then knows which events were already seen (scope.ts). Never a write of its own: a time older
  // than the last full observation only makes a cold container skip less.
  if (newAlerts.length > 0 || (complete && !obs.rollout.complete) || unobservedChanged) {
    actions.push({
      kind: "record-rollout",
      versionId: version,
      complete,
      unobservableSince,
      observedAt: obs.startedAt,
    });
  }

  const waitingFor: Plan["waitingFor"] = [];
  const blocked =
    targets.some((s) => BLOCKED_PHASES.has(s.phase)) ||
    !stacksOk ||
    regionsLagging.length < regionsBehind.length;
  if (regionsLagging.length > 0) waitingFor.push("replicas");
  if (targets.some((s) => REFRESH_PHASES.has(s.phase))) {
    waitingFor.push("refreshes");
  }
  if (
    targets.some((s) =>
      s.instances.some((i) => ["in-flight", "to-send", "boot-in-progress", "retry-wait"].includes(i.state)),
    )
  ) {
    waitingFor.push("commands");
  }
  if (blocked) waitingFor.push("operator");

  return {
    versionId: version,
    strategy: settings.strategy,
    targets,
    regionsBehind,
    regionsLagging,
    actions,
    waitingFor,
    notices,
    complete,
    escalate: undefined,
    deferredAlerts: 0,
    deferredStarts: [],
  };
}

/**
 * When the rollout of the current version began: the earlier of the version's creation and the
 * secret's last rotation. In AWS the version's CreatedDate is the earlier; moto reports "now" as
 * every version's CreatedDate but sets LastRotatedDate when RotateSecret runs.
 */
export function rolloutStartedAt(obs: Pick<Observation, "secret">): Date | undefined {
  const version = obs.secret.current;
  const times = [version ? obs.secret.createdAt[version] : undefined, obs.secret.lastRotatedAt]
    .filter((t): t is Date => t !== undefined)
    .map((t) => t.getTime());
  return times.length > 0 ? new Date(Math.min(...times)) : undefined;
}

/**
 * The emergency tag, if it is valid for the current version. It may never name the current or the
 * pending version as leaked: revoking either would stop every new boot (an alert says so instead).
 */
function validEmergency(
  obs: Observation,
  version: string,
  alerts: Alert[],
): EmergencyDeclaration | undefined {
  const e = obs.emergency;
  if (!e || e.versionId !== version) return undefined;
  if (e.leakedVersionId === version || e.leakedVersionId === obs.secret.pending) {
    alerts.push({
      key: `bad-tag:emergency:${e.versionId}:${e.leakedVersionId}`,
      subject: "Buildkite token rollout: ignored an emergency tag that names a live version as leaked",
      message: lines(
        `What: the emergency tag names version ${e.leakedVersionId} as leaked, but it is the ${e.leakedVersionId === version ? "current" : "pending"} version.`,
        "Effect: the tag is ignored; nothing is revoked early. Revoking it would make every booting agent fail.",
        "To do: find out who wrote the tag; run bk-agent-token rotate --emergency again if a token really leaked.",
      ),
    });
    return undefined;
  }
  return e;
}

function targetBase(t: TargetObservation | TargetStatus) {
  return {
    region: t.region,
    groupName: t.groupName,
    stackName: t.stackName,
    refreshId: undefined,
    percentageComplete: undefined,
    instances: [] as InstanceStatus[],
  };
}

function doneOrWaiting(
  t: TargetObservation,
  instances: InstanceStatus[],
  donePhase: "updated" | "refreshed",
): TargetStatus {
  if (t.members.length === 0) {
    return {
      ...targetBase(t),
      phase: "empty",
      detail: "no instances: every launch reads the new token",
      instances,
    };
  }
  const left = instances.filter((i) => !i.safe).length;
  return allSafe(instances)
    ? { ...targetBase(t), phase: donePhase, detail: "every instance has the new token", instances }
    : { ...targetBase(t), phase: "updating", detail: `${left} instance(s) still to update`, instances };
}

/** The in-place rollout of one group whose region serves the current version. */
function inPlaceStatus(t: TargetObservation, instances: InstanceStatus[], ctx: PlanContext): TargetStatus {
  const { obs, settings, version, alerts, actions } = ctx;
  const where = `${t.groupName} in ${t.region}`;
  const refusedOrForeign = instances.filter((i) => i.state === "foreign-token" || i.state === "refused");
  if (refusedOrForeign.length > 0) {
    alerts.push({
      key: `in-place-refused:${t.region}:${t.groupName}`,
      subject: `Buildkite token rollout blocked: agent configs it must not update: ${t.groupName} (${t.region})`,
      message: lines(
        `What: the install document left ${refusedOrForeign.length} instance(s) unchanged: ${refusedOrForeign.map((i) => `${i.instanceId} (${i.detail})`).join(", ")}.`,
        "Effect: no old token is revoked while they may need it; their agents keep working.",
        `To do: check those instances' buildkite-agent.cfg (a token of another cluster is never overwritten), or replace them (aws autoscaling terminate-instance-in-auto-scaling-group --no-should-decrement-desired-capacity --instance-id …); IN_PLACE_FALLBACK=${settings.inPlace.fallback} applies after ${settings.inPlace.fallbackAfterSeconds} s.`,
      ),
    });
  }
  const due = instances.filter((i) => i.fallbackDue);
  if (due.length === 0) {
    const status = doneOrWaiting(t, instances, "updated");
    return refusedOrForeign.length > 0 ? { ...status, phase: "blocked" } : status;
  }
  const fallback = settings.inPlace.fallback;
  if (fallback === "alert") {
    alerts.push({
      key: `in-place-stuck:${t.region}:${t.groupName}`,
      subject: `Buildkite token rollout blocked: instances not updated in place: ${t.groupName} (${t.region})`,
      message: lines(
        `What: ${due.length} instance(s) of ${where} were not updated ${settings.inPlace.fallbackAfterSeconds} s after the region served version ${version}: ${due.map((i) => `${i.instanceId} (${i.detail})`).join(", ")}.`,
        "Effect: no old token is revoked while they may need it; their agents keep working.",
        "To do: bring their SSM agent online (the instance role needs the Systems Manager permissions the Elastic CI Stack grants), or replace them (aws autoscaling terminate-instance-in-auto-scaling-group --no-should-decrement-desired-capacity --instance-id …), or set IN_PLACE_FALLBACK to refresh or terminate.",
      ),
    });
  } else if (fallback === "terminate") {
    for (const i of due) {
      const agent = obs.agents?.find((a) => a.instanceId === i.instanceId);
      if (agent?.connectionState === "connected") {
        actions.push({
          kind: "stop-agent",
          target: targetGroupOf(t),
          instanceId: i.instanceId,
          agentId: agent.id,
        });
      } else if (agent?.connectionState !== "stopping" && obs.agents !== undefined) {
        // No agent runs a job there (never connected, stopped, lost): replacing it interrupts nothing.
        actions.push({ kind: "terminate-instance", target: targetGroupOf(t), instanceId: i.instanceId });
      }
    }
  }
  return {
    ...targetBase(t),
    phase: "blocked",
    detail: `${due.length} instance(s) not updated in place (fallback ${fallback})`,
    instances,
  };
}

/** The instance refresh of one group whose region serves the current version. */
function refreshStatus(t: TargetObservation, instances: InstanceStatus[], ctx: PlanContext): TargetStatus {
  const { alerts } = ctx;
  const where = `${t.groupName} in ${t.region}`;
  const status = (
    phase: TargetStatus["phase"],
    detail: string,
    refresh?: RefreshObservation,
  ): TargetStatus => ({
    ...targetBase(t),
    phase,
    detail,
    refreshId: refresh?.id,
    percentageComplete: refresh?.percentageComplete,
    instances,
  });
  const ours = ourRefresh(t, ctx);
  if (ours) {
    if (ACTIVE_REFRESH.has(ours.status)) return status("refreshing", `refresh ${ours.status}`, ours);
    if (allSafe(instances)) return status("refreshed", "every instance has the new token", ours);
    const left = instances.filter((i) => !i.safe);
    if (ours.status === "Successful") {
      alerts.push({
        key: `refresh-partial:${t.region}:${t.groupName}:${ours.id}`,
        subject: `Buildkite token rollout blocked: refresh left old instances: ${t.groupName} (${t.region})`,
        message: lines(
          `What: instance refresh ${ours.id} of ${where} ended Successful but ${left.length} instance(s) launched before the region served the new token are still there: ${left.map((i) => i.instanceId).join(", ")} (most likely protected from scale-in and skipped under ScaleInProtectedInstances=Ignore).`,
          "Effect: those instances still hold the old token, so no old token is revoked; agents keep working.",
          `To do: use ROLLOUT_STRATEGY=in-place, or set REFRESH_SCALE_IN_PROTECTED_INSTANCES=Refresh (interrupts running jobs), then ${retryRefreshAdvice(t.region, t.groupName)}.`,
        ),
      });
      return status(
        "partial",
        `ended Successful but left ${left.length} instance(s) with the old token`,
        ours,
      );
    }
    if (FAILED_REFRESH.has(ours.status)) {
      alerts.push({
        key: `refresh-failed:${t.region}:${t.groupName}:${ours.id}`,
        subject: `Buildkite token rollout blocked: refresh did not complete: ${t.groupName} (${t.region})`,
        message: lines(
          `What: instance refresh ${ours.id} of ${where} ended ${ours.status}${ours.statusReason ? `: ${ours.statusReason}` : ""}.`,
          "Effect: some instances still hold the old token, so no old token is revoked; agents keep working.",
          `To do: fix the cause (see the group's activity history; on the Elastic CI Stack every instance is protected from scale-in, so ScaleInProtectedInstances=Wait fails after an hour: use ROLLOUT_STRATEGY=in-place or Refresh), then ${retryRefreshAdvice(t.region, t.groupName)}.`,
        ),
      });
      return status(
        "failed",
        `ended ${ours.status}${ours.statusReason ? `: ${ours.statusReason}` : ""}`,
        ours,
      );
    }
    return status("unknown", `refresh in unexpected state ${ours.status}`, ours);
  }
  const active = t.refreshes.find((r) => ACTIVE_REFRESH.has(r.status));
  if (active) {
    // Someone else's refresh, or ours for an older version: let it finish, then start ours.
    return status(
      "waiting-for-other-refresh",
      `refresh ${active.id} (${active.status}) is already running`,
      active,
    );
  }
  if (t.members.length === 0) return status("empty", "no instances: every launch reads the new token");
  if (allSafe(instances)) {
    // Done by its instances alone. Where our tag names a refresh for this version (its history not
    // read, observe.ts: the instances settle it), that refresh is the one done: its late report of
    // success tells nothing new (scope.ts).
    const named = t.marker?.versionId === ctx.version ? t.marker.refreshId : undefined;
    return { ...status("refreshed", "every instance has the new token"), refreshId: named };
  }
  return status("start-refresh", "starting a refresh");
}

/**
 * The refresh that counts as ours for the current version, after checking the marker against the
 * group's refresh history: it must have started after the recorded intent, with preferences we use
 * and no desired configuration. A marker with an intent but no id (a lost StartInstanceRefresh
 * response, a crash) adopts the refresh that fits. A marker that fits nothing is reported and ignored.
 */
function ourRefresh(t: TargetObservation, ctx: PlanContext): RefreshObservation | undefined {
  const { obs, version, preferences, promotedAt, alerts, actions } = ctx;
  const m = t.marker;
  if (!m || m.versionId !== version) return undefined;
  const where = `${t.groupName} in ${t.region}`;
  const intentOk =
    m.intentAt.getTime() <= obs.now.getTime() + INTENT_SKEW_MS &&
    (promotedAt === undefined || m.intentAt.getTime() >= promotedAt.getTime() - INTENT_SKEW_MS);
  // A refresh for this version cannot have started before the version existed: both times are
  // AWS's clocks (StartTime, the version's CreatedDate), so no skew applies. Without this, the last
  // rotation's refresh, started seconds before a quick second rotation's intent, fitted it.
  const fits = (r: RefreshObservation) =>
    r.startTime !== undefined &&
    r.startTime.getTime() >= m.intentAt.getTime() - INTENT_SKEW_MS &&
    (promotedAt === undefined || r.startTime.getTime() >= promotedAt.getTime()) &&
    !r.hasDesiredConfiguration &&
    r.skipMatching !== true &&
    (r.scaleInProtectedInstances === undefined ||
      r.scaleInProtectedInstances === preferences.scaleInProtectedInstances ||
      r.scaleInProtectedInstances === "Refresh");
  const bad = (why: string) => {
    alerts.push({
      key: `bad-tag:${t.region}:${t.groupName}:refresh:${m.refreshId ?? "-"}:${m.intentAt.getTime()}`,
      subject: `Buildkite token rollout: ignored an invalid refresh tag on ${t.groupName} (${t.region})`,
      message: lines(
        `What: the tag buildkite-agent-token-rotation:refresh on ${where} ${why}.`,
        "Effect: it is ignored; the rollout counts only what the instances themselves show.",
        "To do: find out who writes this project's tags (only the reconcile function should).",
      ),
    });
    return undefined;
  };
  if (!intentOk) return bad("records an intent outside this rollout's time");
  if (m.refreshId === undefined) {
    const adopted = t.refreshes.filter(fits).at(-1);
    if (!adopted) return undefined;
    actions.push({
      kind: "adopt-refresh",
      target: targetGroupOf(t),
      versionId: version,
      intentAt: m.intentAt,
      refreshId: adopted.id,
    });
    return adopted;
  }
  const named = t.refreshes.find((r) => r.id === m.refreshId);
  // Our refresh is no longer in the group's history: refresh again (safe, never unsafe).
  if (!named) return undefined;
  if (!fits(named))
    return bad(
      `names refresh ${named.id}, which did not start after the recorded intent with this project's preferences`,
    );
  return named;
}

function lines(...parts: string[]): string {
  return parts.join("\n");
}
