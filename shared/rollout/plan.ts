import { alertId, retryRefreshAdvice } from "./markers";
import type { Action, Observation, Plan, PlanSettings, TargetObservation, TargetStatus } from "./types";

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

export { EMERGENCY_TAG, MARKER_TAG, ROLLOUT_TAG } from "./markers";
/** How far ahead an expiring current token is reported. */
export const EXPIRY_WARNING_MS = 86_400_000;

type Alert = Omit<Extract<Action, { kind: "alert" }>, "kind">;

/**
 * The whole decision of a reconcile run, as a pure function of what was observed. Its one promise:
 * a token is revoked only when every target group has been refreshed (or is empty) after its region
 * served the current version, so no instance can still need any other token — and then every token
 * this project made for the secret, other than AWSCURRENT's and AWSPENDING's, is revoked.
 */
export function plan(obs: Observation, settings: PlanSettings): Plan {
  const version = obs.secret.current;
  const unmanaged = obs.tokens.filter((t) => t.versionId === undefined);
  const notices: string[] = [];
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
      versionId: undefined,
      targets: [],
      regionsBehind: [],
      regionsLagging: [],
      actions: [],
      waitingFor: ["operator"],
      notices: [...notices, "the secret has no AWSCURRENT version"],
      complete: false,
    };
  }

  if (!obs.tokens.some((t) => t.versionId === version)) {
    // Not a version this project made (the initial token, or a value set by hand): rolling it out
    // would refresh every fleet for nothing, and revoking anything could strand the instances
    // that still use it. Report, never guess.
    return {
      versionId: version,
      targets: obs.targets.map((t) => ({
        region: t.region,
        groupName: t.groupName,
        phase: "unmanaged",
        refreshId: undefined,
        percentageComplete: undefined,
        detail: "the current version was not created by this project; nothing to roll out",
      })),
      regionsBehind: [],
      regionsLagging: [],
      actions: [],
      waitingFor: [],
      notices: [
        ...notices,
        `the current version ${version} has no token created by this project (the initial token, or set by hand): nothing is rolled out or revoked until the next rotation`,
      ],
      complete: false,
    };
  }

  const emergency = obs.emergency?.versionId === version ? obs.emergency : undefined;
  // A leaked token: replace protected (busy) instances too, and accept less healthy capacity.
  const preferences = emergency
    ? {
        ...settings.preferences,
        minHealthyPercentage: emergency.minHealthyPercentage,
        scaleInProtectedInstances: "Refresh" as const,
      }
    : settings.preferences;
  const promotedAt = rolloutStartedAt(obs);
  const ageSeconds = promotedAt ? (obs.now.getTime() - promotedAt.getTime()) / 1000 : 0;
  const alerts: Alert[] = [];

  // Replicas: a region serves the new token only when asked directly returns the new version id.
  const replicaByRegion = new Map(obs.replicas.map((r) => [r.region, r]));
  const inSync = (region: string) =>
    region === settings.primaryRegion || replicaByRegion.get(region)?.current === version;
  const regionsBehind = obs.replicas.filter((r) => r.current !== version).map((r) => r.region);
  const replicaFailed = (r: (typeof obs.replicas)[number]) =>
    r.replicationStatus === "Failed" || r.error !== undefined;
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
          `What: the replica of ${obs.secret.arn} in ${r.region} does not serve version ${version}: ${r.error ?? r.statusMessage ?? "replication failed"}.`,
          `Effect: nothing is refreshed in ${r.region} and no old token is revoked, so agents keep working with the old token.`,
          `To do: check the replica (aws secretsmanager describe-secret --region ${r.region}), fix or re-create it; the next reconcile continues on its own.`,
        ),
      });
    } else if (ageSeconds > settings.replicaAlertSeconds) {
      alerts.push({
        key: `replica-slow:${r.region}`,
        subject: `Buildkite token rollout slow: ${r.region} still serves an old token`,
        message: lines(
          `What: ${Math.round(ageSeconds)} s after version ${version} was created, ${r.region} still serves ${r.current ?? "no version"} (replication status ${r.replicationStatus ?? "unknown"}).`,
          "Effect: the region's groups are not refreshed yet and no old token is revoked.",
          `To do: check replication of ${obs.secret.arn} to ${r.region}.`,
        ),
      });
    }
  }

  const actions: Action[] = [];
  const targets: TargetStatus[] = obs.targets.map((t) => {
    const status = targetStatus(t, version, inSync(t.region));
    if (status.phase === "start-refresh") {
      actions.push({
        kind: "start-refresh",
        target: { region: t.region, groupName: t.groupName },
        versionId: version,
        preferences,
      });
    }
    if (status.phase === "failed") {
      alerts.push({
        key: `refresh-failed:${t.region}:${t.groupName}:${status.refreshId}`,
        subject: `Buildkite token rollout blocked: refresh of ${t.groupName} in ${t.region} did not complete`,
        message: lines(
          `What: instance refresh ${status.refreshId} of ${t.groupName} in ${t.region} ${status.detail}.`,
          `Effect: some instances may still hold the old token, so no old token is revoked; agents keep working.`,
          `To do: fix the cause (see the group's activity history), then ${retryRefreshAdvice(t.region, t.groupName)}.`,
        ),
      });
    }
    if (status.phase === "partial") {
      alerts.push({
        key: `refresh-partial:${t.region}:${t.groupName}:${status.refreshId}`,
        subject: `Buildkite token rollout blocked: refresh of ${t.groupName} in ${t.region} skipped instances`,
        message: lines(
          `What: instance refresh ${status.refreshId} of ${t.groupName} in ${t.region} ${status.detail}, most likely instances protected from scale-in skipped under ScaleInProtectedInstances=Ignore.`,
          "Effect: those instances still hold the old token, so no old token is revoked; agents keep working.",
          `To do: set REFRESH_SCALE_IN_PROTECTED_INSTANCES to Wait (or Refresh), then ${retryRefreshAdvice(t.region, t.groupName)}.`,
        ),
      });
    }
    if (status.phase === "missing") {
      alerts.push({
        key: `group-missing:${t.region}:${t.groupName}`,
        subject: `Buildkite token rollout blocked: ${t.groupName} not found in ${t.region}`,
        message: lines(
          `What: the target group ${t.groupName} does not exist in ${t.region}.`,
          "Effect: no old token is revoked.",
          "To do: fix the TargetGroups parameter (region:group-name list) and redeploy.",
        ),
      });
    }
    return status;
  });

  if (emergency) {
    const leaked = obs.tokens.filter((t) => t.versionId === emergency.leakedVersionId);
    // Revoking stops new registrations only; connected agents keep running. So it is safe as soon
    // as no region can hand the leaked token to a booting instance any more.
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

  const done = (s: TargetStatus) => s.phase === "refreshed" || s.phase === "empty";
  const complete = regionsBehind.length === 0 && targets.every(done);
  if (complete) {
    const revoking = new Set(actions.flatMap((a) => (a.kind === "revoke" ? [a.tokenId] : [])));
    for (const token of obs.tokens) {
      if (revoking.has(token.id)) continue;
      if (token.versionId && token.versionId !== version && token.versionId !== obs.secret.pending) {
        actions.push({ kind: "revoke", tokenId: token.id, versionId: token.versionId });
      }
    }
    if (obs.completedVersion !== version) actions.push({ kind: "record-complete", versionId: version });
  } else if (ageSeconds > settings.maxRolloutSeconds) {
    const open = targets.filter((s) => !done(s)).map((s) => `${s.region}:${s.groupName} (${s.phase})`);
    alerts.push({
      key: "budget",
      subject: "Buildkite token rollout is taking longer than its time budget",
      message: lines(
        `What: the rollout of version ${version} has run for ${Math.round(ageSeconds / 60)} min (budget ${Math.round(settings.maxRolloutSeconds / 60)} min).`,
        `Waiting for: ${[...regionsBehind.map((r) => `replica ${r}`), ...open].join(", ") || "nothing"}.`,
        "Effect: old tokens stay valid until every group has refreshed. To do: look at the groups listed.",
      ),
    });
  }
  if (!obs.tokens.some((t) => t.versionId === version)) {
    notices.push(
      `the current version ${version} has no token created by this project (initial token, or set by hand)`,
    );
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

  for (const a of alerts) if (!obs.alertsSent.includes(alertId(a.key))) actions.push({ kind: "alert", ...a });

  const waitingFor: Plan["waitingFor"] = [];
  const blocked =
    targets.some((s) => ["failed", "partial", "missing", "unknown"].includes(s.phase)) ||
    regionsLagging.length < regionsBehind.length;
  if (regionsLagging.length > 0) waitingFor.push("replicas");
  if (targets.some((s) => ["start-refresh", "refreshing", "waiting-for-other-refresh"].includes(s.phase))) {
    waitingFor.push("refreshes");
  }
  if (blocked) waitingFor.push("operator");

  return {
    versionId: version,
    targets,
    regionsBehind,
    regionsLagging,
    actions,
    waitingFor,
    notices,
    complete,
  };
}

/**
 * When the rollout of the current version began: the earlier of the version's creation and the
 * secret's last rotation. In AWS the version's CreatedDate is the earlier; moto reports "now" as
 * every version's CreatedDate but sets LastRotatedDate when RotateSecret runs.
 */
export function rolloutStartedAt(obs: Observation): Date | undefined {
  const version = obs.secret.current;
  const times = [version ? obs.secret.createdAt[version] : undefined, obs.secret.lastRotatedAt]
    .filter((t): t is Date => t !== undefined)
    .map((t) => t.getTime());
  return times.length > 0 ? new Date(Math.min(...times)) : undefined;
}

function targetStatus(t: TargetObservation, version: string, regionInSync: boolean): TargetStatus {
  const base = { region: t.region, groupName: t.groupName };
  const status = (
    phase: TargetStatus["phase"],
    detail: string,
    refresh?: { id: string; pct?: number | undefined },
  ) => ({
    ...base,
    phase,
    detail,
    refreshId: refresh?.id,
    percentageComplete: refresh?.pct,
  });
  if (t.error) return status("unknown", `could not be observed: ${t.error}`);
  if (!t.exists) return status("missing", "group not found");
  // Before its region serves the new token, a refresh would boot instances with the old one.
  if (!regionInSync) return status("waiting-for-replica", "waiting for the region to serve the new version");

  if (t.marker?.versionId === version) {
    const ours = t.refreshes.find((r) => r.id === t.marker?.refreshId);
    if (ours) {
      const ref = { id: ours.id, pct: ours.percentageComplete };
      if (ours.status === "Successful") {
        // ScaleInProtectedInstances=Ignore skips protected instances yet ends Successful: those
        // instances still hold the old token, so this does not count as refreshed.
        const left = ours.instancesToUpdate ?? 0;
        if (left > 0 || (ours.percentageComplete ?? 100) < 100) {
          return status(
            "partial",
            `ended Successful but left ${left > 0 ? left : "some"} instance(s) unreplaced (${ours.percentageComplete ?? "?"}% complete)`,
            ref,
          );
        }
        return status("refreshed", "refreshed with the current version", ref);
      }
      if (ACTIVE_REFRESH.has(ours.status)) return status("refreshing", `refresh ${ours.status}`, ref);
      if (FAILED_REFRESH.has(ours.status)) {
        return status(
          "failed",
          `ended ${ours.status}${ours.statusReason ? `: ${ours.statusReason}` : ""}`,
          ref,
        );
      }
      return status("unknown", `refresh in unexpected state ${ours.status}`, ref);
    }
    // Our refresh is no longer in the group's history: fall through and refresh again (safe, never unsafe).
  }
  const active = t.refreshes.find((r) => ACTIVE_REFRESH.has(r.status));
  if (active) {
    // Someone else's refresh, or ours for an older version: let it finish, then start ours.
    return status("waiting-for-other-refresh", `refresh ${active.id} (${active.status}) is already running`, {
      id: active.id,
      pct: active.percentageComplete,
    });
  }
  // Nothing runs that could hold the old token: instances launched from now on read the new one.
  if (t.instances === 0) return status("empty", "no instances, nothing to refresh");
  return status("start-refresh", "starting a refresh");
}

function lines(...parts: string[]): string {
  return parts.join("\n");
}
