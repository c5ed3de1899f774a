/**
 * One rotation of the scenario, start to finish: inject the faults this rotation asks for, let the
 * world play Secrets Manager (rotate-secret, the four steps, the label event), then follow the
 * rollout through the operator's status view until it completes, blocks as designed, or runs out
 * of time, firing the safety-net schedule as EventBridge would. Everything it learns goes into the
 * rotation's facts; everything it shows goes through the narrator and the live view.
 */
import { renderProgress } from "../../cli/operator/render/progress";
import { redactSecrets } from "../../shared/lib/log";
import { type Paint, secondsText as secs, short as shortId } from "../../shared/lib/terminal";
import type { StatusReport } from "../../shared/rollout/status";
import { abortable, sleep } from "../lib/abortable";
import type { RotationFacts, RunFacts, Strategy } from "../verdict/facts";
import { RotationStepError, type World } from "../world/world";
import { fleetDelta, startedRotation } from "./facts";
import type { LiveView } from "./live-view";
import type { Narrator } from "./narrator";
import type { Profile } from "./profiles";
import type { StatusReader } from "./status-reader";

const short = (id: string | undefined) => shortId(id, "?");

export interface RotationLoopDeps {
  world: World;
  profile: Profile;
  /** Replication lag in force (bounds the waits). */
  lagMs: number;
  strategy: Strategy;
  failRefreshRegion: string | undefined;
  ssmOffline: boolean;
  /** How many rotations the run has: faults are injected into the last. */
  rotations: number;
  narrator: Narrator;
  view: LiveView;
  status: StatusReader;
  paint: Paint;
  color: boolean;
  width: number;
  log(message: string): void;
  signal: AbortSignal | undefined;
}

export interface RotationRun {
  rotation: RotationFacts;
  /** Set when this rotation made the rollout block on purpose (--ssm-offline). */
  blockedOn: RunFacts["blockedOn"];
}

export async function runRotation(deps: RotationLoopDeps, index: number): Promise<RotationRun> {
  const { world, view, paint, log } = deps;
  const rotation = startedRotation(index);
  deps.narrator.rotation = rotation;
  const countersBefore = world.fleet.counters();
  view.event("");
  view.event(paint(`── rotation ${index} of ${deps.rotations} ──`, "bold"));
  const blockedOn = injectFaults(deps, rotation, index === deps.rotations);
  log("aws secretsmanager rotate-secret → Secrets Manager invokes rotate-token for each of the four steps");
  await rotate(deps, rotation);
  const { versionId, promotedAt } = rotation;
  if (rotation.error || !versionId || !promotedAt) {
    log(paint(`rotation ${index} failed: ${rotation.error ?? "no version"}`, "red"));
  } else {
    log(
      `AWSCURRENT → version ${short(versionId)} (${secs(promotedAt.getTime() - rotation.startedAt.getTime())} after rotate-secret${rotation.attempts > 1 ? `, ${rotation.attempts} attempts` : ""})`,
    );
    await followRollout(deps, rotation, versionId, promotedAt);
  }
  rotation.endedAt = new Date();
  rotation.fleet = fleetDelta(world, countersBefore, rotation.startedAt, rotation.endedAt);
  return { rotation, blockedOn };
}

/** --fail-refresh, and the SSM agent outage of the last in-place rotation. */
function injectFaults(deps: RotationLoopDeps, rotation: RotationFacts, last: boolean): RunFacts["blockedOn"] {
  const { world, paint, log } = deps;
  if (deps.failRefreshRegion && last) {
    world.fleet.failRefreshes({ region: deps.failRefreshRegion });
    rotation.failRefreshRegion = deps.failRefreshRegion;
    log(
      paint(
        `--fail-refresh: every instance refresh in ${deps.failRefreshRegion} will fail from now on`,
        "yellow",
      ),
    );
  }
  if (deps.strategy !== "in-place" || !last) return undefined;
  // One instance's SSM agent loses its connection (PingStatus ConnectionLost) as the rotation
  // starts: Run Command cannot reach it until it is back, so the rollout must retry it.
  const target = ssmOutageTarget(world);
  if (!target) return undefined;
  world.fleet.setSsmAgent(target.region, target.instanceId, "connection-lost");
  rotation.ssmOutage = { ...target, restoredAt: undefined };
  log(
    paint(
      deps.ssmOffline
        ? `--ssm-offline: the SSM agent of ${target.region}/${target.instanceId} is connection-lost and stays so`
        : `the SSM agent of ${target.region}/${target.instanceId} is connection-lost; it comes back ${secs(deps.profile.ssmOutageMs)} after promotion`,
      "yellow",
    ),
  );
  return deps.ssmOffline ? { kind: "instance", name: target.instanceId } : undefined;
}

/** The instance whose SSM agent drops out: a booted Linux instance in a replica region if there is one. */
function ssmOutageTarget(world: World): { region: string; instanceId: string } | undefined {
  const live = world.fleet
    .groups()
    .flatMap((g) =>
      g.instances
        .filter((i) => i.lifecycleState === "InService" && i.bootFinished)
        .map((i) => ({ region: g.region, instanceId: i.instanceId, platform: i.platform })),
    );
  const pick =
    live.find((i) => i.platform === "Linux" && i.region !== world.primaryRegion) ??
    live.find((i) => i.platform === "Linux") ??
    live[0];
  return pick ? { region: pick.region, instanceId: pick.instanceId } : undefined;
}

/** Secrets Manager's part, played by the world (one player for every caller; its retries included). */
async function rotate(deps: RotationLoopDeps, rotation: RotationFacts): Promise<void> {
  try {
    const r = await abortable(
      deps.world.rotate({ ...(deps.signal ? { signal: deps.signal } : {}) }),
      deps.signal,
    );
    rotation.versionId = r.versionId;
    rotation.promotedAt = r.promotedAt;
    rotation.attempts = r.attempts;
  } catch (error) {
    if (!(error instanceof RotationStepError)) throw error;
    rotation.versionId = error.versionId;
    rotation.attempts = error.attempts;
    rotation.error = redactSecrets(error.message);
  }
}

/** Follows the rollout of `versionId` until it completes, blocks as designed, or times out. */
async function followRollout(
  deps: RotationLoopDeps,
  rotation: RotationFacts,
  versionId: string,
  promotedAt: Date,
): Promise<void> {
  const { world, profile, narrator, view, paint, log, signal } = deps;
  const replicas = watchReplicas(deps, rotation, versionId, promotedAt);
  const deadline = Date.now() + profile.rotationTimeoutMs + 3 * deps.lagMs;
  const alertsAtStart = narrator.alerts;
  let lastSchedule = Date.now();
  let lastAlertPoll = 0;
  let statusError: string | undefined;
  let blocked = false;
  let baseline: StatusReport | undefined;
  const progress = (report: StatusReport) => {
    baseline ??= report;
    view.progress(renderProgress(report, { color: deps.color, width: deps.width, baseline }));
  };
  try {
    for (;;) {
      const tickStart = Date.now();
      let report: StatusReport | undefined;
      try {
        report = await abortable(deps.status.read(), signal);
        statusError = undefined;
      } catch (error) {
        if (signal?.aborted) throw error;
        const message = redactSecrets(error instanceof Error ? error.message : String(error));
        if (message !== statusError) log(paint(`(status not available this tick: ${message})`, "dim"));
        statusError = message;
      }
      if (report) progress(report);
      restoreSsmAgent(deps, rotation, promotedAt);
      narrator.observe();
      if (Date.now() - lastAlertPoll >= 1_000) {
        lastAlertPoll = Date.now();
        await narrator.pollAlerts();
      }
      const idle = world.lambda.isIdle() && world.bus.isIdle();
      if (report && report.secret.currentVersionId === versionId && idle) {
        const done = report.complete && report.managedTokensValid.every((t) => t.versionId === versionId);
        blocked =
          report.waitingFor.includes("operator") &&
          !report.waitingFor.includes("refreshes") &&
          !report.waitingFor.includes("replicas") &&
          narrator.alerts > alertsAtStart;
        if (done || blocked) break;
      }
      if (Date.now() >= deadline) {
        rotation.timedOut = true;
        log(
          paint(
            `rotation ${rotation.index}: rollout not finished after ${secs(Date.now() - promotedAt.getTime())}; giving up waiting`,
            "red",
          ),
        );
        break;
      }
      if (Date.now() - lastSchedule >= profile.scheduleEveryMs) {
        lastSchedule = Date.now();
        world.schedule();
      }
      await sleep(profile.tickMs - (Date.now() - tickStart), signal);
    }
  } finally {
    await replicas.stop();
  }
  if (blocked) await rideOutBlocked(deps, alertsAtStart);
  await abortable(world.settled(30_000 + deps.lagMs), signal).catch((error: unknown) => {
    if (signal?.aborted) throw error;
    log(
      paint(`the world did not settle: ${error instanceof Error ? error.message : String(error)}`, "yellow"),
    );
  });
  narrator.observe();
  await narrator.pollAlerts();
  const last = await deps.status.read().catch(() => undefined);
  if (last) progress(last);
  narrator.observe();
  view.flush();
}

/** Each replica region is asked directly and often, so "in sync" times are accurate to ~50 ms. */
function watchReplicas(
  deps: RotationLoopDeps,
  rotation: RotationFacts,
  versionId: string,
  promotedAt: Date,
): { stop(): Promise<void> } {
  const { world, log } = deps;
  let watching = true;
  const loop = (async () => {
    while (watching && Object.keys(rotation.replicasInSyncAt).length < world.replicaRegions.length) {
      const served = await world.replicator
        .currentVersions()
        .catch(() => ({}) as Record<string, string | undefined>);
      const at = new Date();
      for (const [region, current] of Object.entries(served)) {
        if (current !== versionId || rotation.replicasInSyncAt[region]) continue;
        rotation.replicasInSyncAt[region] = at;
        log(
          `replica ${region} serves version ${short(versionId)} (${secs(Math.max(0, at.getTime() - promotedAt.getTime()))} after promotion)`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  return {
    async stop() {
      watching = false;
      await loop;
    },
  };
}

/** The SSM agent taken offline comes back `ssmOutageMs` after promotion (not with --ssm-offline). */
function restoreSsmAgent(deps: RotationLoopDeps, rotation: RotationFacts, promotedAt: Date): void {
  const outage = rotation.ssmOutage;
  if (!outage || deps.ssmOffline || outage.restoredAt) return;
  if (Date.now() - promotedAt.getTime() < deps.profile.ssmOutageMs) return;
  deps.world.fleet.setSsmAgent(outage.region, outage.instanceId, "online");
  outage.restoredAt = new Date();
  deps.log(
    `the SSM agent of ${outage.region}/${outage.instanceId} is online again: the next retry reaches it`,
  );
}

/** A blocked rollout: two more schedule runs show that reconcile revokes nothing and does not alert again. */
async function rideOutBlocked(deps: RotationLoopDeps, alertsAtStart: number): Promise<void> {
  const { world, signal, log } = deps;
  log("rollout blocked: reconcile revokes nothing and waits for an operator; the schedule keeps firing:");
  for (let i = 0; i < 2; i++) {
    world.schedule();
    await abortable(world.settled(30_000 + deps.lagMs), signal).catch((error: unknown) => {
      if (signal?.aborted) throw error;
    });
  }
  await deps.narrator.pollAlerts();
  log(`  ${deps.narrator.alerts - alertsAtStart} alert(s) in total: level-triggered runs do not alert again`);
}
