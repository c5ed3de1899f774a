/**
 * The facts of a sandbox run, collected from what the local servers recorded (the Buildkite API's
 * tokens, registrations and requests, the fleet's counters and refreshes, Run Command's
 * invocations, the agents' cfg files on disk, the secret's versions, the alerts received), never
 * from what the functions claim. No token value is kept: cfg files are recorded by token id.
 */
import { readFileSync } from "node:fs";
import { GetSecretValueCommand, ListSecretVersionIdsCommand } from "@aws-sdk/client-secrets-manager";
import { managedVersionOf } from "../../shared/buildkite/description";
import { parseAgentToken } from "../fakes/autoscaling/agent-config";
import type { FleetCounters } from "../fakes/autoscaling/index";
import type { InvocationRecord } from "../fakes/lambda/local-lambda";
import type {
  CfgFacts,
  FleetDelta,
  RevocationFacts,
  RotationFacts,
  RunFacts,
  Strategy,
} from "../verdict/facts";
import type { World } from "../world/world";
import type { Profile } from "./profiles";

/** Run Command invocation statuses that end an invocation (SSM "Understanding command statuses"). */
export const TERMINAL_INVOCATION: ReadonlySet<string> = new Set([
  "Success",
  "Failed",
  "Cancelled",
  "TimedOut",
]);

/** A rotation's facts as it starts: filled in as it goes. */
export function startedRotation(index: number): RotationFacts {
  return {
    index,
    versionId: undefined,
    startedAt: new Date(),
    promotedAt: undefined,
    replicasInSyncAt: {},
    attempts: 0,
    error: undefined,
    failRefreshRegion: undefined,
    ssmOutage: undefined,
    reconcileRuns: 0,
    reconcileFailures: 0,
    schedulesFired: 0,
    timedOut: false,
    endedAt: undefined,
    fleet: undefined,
  };
}

/** Counts a reconcile invocation that ended into the rotation under way. */
export function countReconcileRun(rotation: RotationFacts, record: InvocationRecord): void {
  rotation.reconcileRuns++;
  if (!record.ok) rotation.reconcileFailures++;
}

/** Counts a safety-net schedule event into the rotation under way. */
export function countBusEvent(rotation: RotationFacts, event: unknown): void {
  if ((event as { "detail-type"?: unknown } | null)?.["detail-type"] === "Scheduled Event")
    rotation.schedulesFired++;
}

/**
 * Every live instance's agent cfg as it is on disk right now, each token named by the id of the
 * Buildkite token whose value it holds (values are compared here and never kept). Synchronous,
 * so a revocation hook records the instant of the revocation.
 */
export function readCfgs(world: World): CfgFacts[] {
  const ids = new Map(world.buildkite.tokens().map((t) => [t.value, t.id]));
  return world.fleet.groups().flatMap((g) =>
    g.instances.map((i): CfgFacts => {
      let value: string | undefined;
      try {
        value = parseAgentToken(readFileSync(i.configPath, "utf8"));
      } catch {
        value = undefined; // not written yet (user data still running) or already cleaned up
      }
      return {
        region: g.region,
        groupName: g.name,
        instanceId: i.instanceId,
        platform: i.platform,
        lifecycleState: i.lifecycleState,
        bootFinished: i.bootFinished,
        launchTime: i.launchTime,
        cfgTokenId: value === undefined || value === "" ? null : (ids.get(value) ?? "foreign"),
      };
    }),
  );
}

/** What the fleet and the Run Command stand-in recorded between two instants of a rotation. */
export function fleetDelta(world: World, before: FleetCounters, from: Date, to: Date): FleetDelta {
  const after = world.fleet.counters();
  const installs = world.runCommand
    .invocations()
    .filter((i) => i.requestedAt >= from.getTime() && i.requestedAt <= to.getTime());
  return {
    replacedByRollout: after.replacedByRollout - before.replacedByRollout,
    jobsInterrupted: after.jobsInterrupted - before.jobsInterrupted,
    selfTerminated: after.selfTerminated - before.selfTerminated,
    churnLaunches: after.churnLaunches - before.churnLaunches,
    failedRegistrations: after.registrations.failed - before.registrations.failed,
    agentRestarts: after.agentRestarts - before.agentRestarts,
    installInvocations: installs.length,
    installFailures: installs.filter((i) => TERMINAL_INVOCATION.has(i.status) && i.status !== "Success")
      .length,
  };
}

export async function gatherFacts(
  world: World,
  o: {
    expect: RunFacts["expect"];
    strategy: Strategy;
    blockedOn: RunFacts["blockedOn"];
    revocations: RevocationFacts[];
    failRefreshRegion: string | undefined;
    profile: Profile;
    startedAt: Date;
    worldReadyAt: Date;
    rotations: RotationFacts[];
  },
): Promise<{ facts: Omit<RunFacts, "tokenLeaks" | "logLines" | "injected">; secretValues: string[] }> {
  const tokens = world.buildkite.tokens();
  // Which values some version of the secret held: only those could have reached an instance.
  let stored: Set<string> | undefined;
  try {
    const versions = await world.secrets.send(
      new ListSecretVersionIdsCommand({
        SecretId: world.secretArn,
        IncludeDeprecated: true,
        MaxResults: 100,
      }),
    );
    stored = new Set<string>();
    for (const v of versions.Versions ?? []) {
      if (!v.VersionId) continue;
      const out = await world.secrets
        .send(new GetSecretValueCommand({ SecretId: world.secretArn, VersionId: v.VersionId }))
        .catch(() => undefined);
      if (out?.SecretString) stored.add(out.SecretString);
    }
  } catch {
    stored = undefined; // unknown: every token counts as stored (the stricter check)
  }
  const apiToken = await world.secrets
    .send(new GetSecretValueCommand({ SecretId: world.stack.apiTokenSecretArn, VersionStage: "AWSCURRENT" }))
    .then((out) => out.SecretString)
    .catch(() => undefined);
  const alerts = await world.alerts().catch(() => []);
  const groups = world.fleet.groups();
  const requests = world.buildkite.requests();
  const facts: Omit<RunFacts, "tokenLeaks" | "logLines" | "injected"> = {
    expect: o.expect,
    failRefreshRegion: o.failRefreshRegion,
    primaryRegion: world.primaryRegion,
    replicaRegions: world.replicaRegions,
    strategy: o.strategy,
    blockedOn: o.blockedOn,
    groups: o.profile.stacks.map((g) => ({
      region: g.region,
      name: world.stacks.groupName(g.region, g.stackName),
      stackName: g.stackName,
      platform: g.platform ?? "Linux",
      instances: g.instances,
      busyAtStart: g.jobs?.busyAtStart ?? 0,
    })),
    startedAt: o.startedAt,
    worldReadyAt: o.worldReadyAt,
    endedAt: new Date(),
    rotations: o.rotations,
    tokens: tokens.map((t) => {
      return {
        id: t.id,
        description: t.description,
        versionId: managedVersionOf(t.description, world.secretArn),
        createdAt: t.createdAt,
        revokedAt: t.revokedAt,
        valid: t.valid,
        initial: t.id === world.stack.initialToken.id,
        storedInSecret: stored ? stored.has(t.value) : true,
      };
    }),
    refreshes: groups.flatMap((g) =>
      world.fleet.refreshes(g.region, g.name).map((r) => ({
        region: r.region,
        groupName: r.autoScalingGroupName,
        id: r.instanceRefreshId,
        status: r.status,
        statusReason: r.statusReason,
        startTime: r.startTime,
        endTime: r.endTime,
      })),
    ),
    registrations: world.buildkite.registrations(),
    buildkiteRequests: {
      total: requests.length,
      failed: requests.filter((r) => r.status === 0 || r.status === 429 || r.status >= 500).length,
    },
    revocations: o.revocations,
    finalCfgs: readCfgs(world),
    alerts,
  };
  return {
    facts,
    secretValues: [...tokens.map((t) => t.value), ...(apiToken ? [apiToken] : [])],
  };
}

/** Lines the handlers logged, by level (counted from the JSON lines, never shown). */
export function logStats(lines: readonly string[]): RunFacts["logLines"] {
  return {
    total: lines.length,
    warn: lines.filter((l) => l.includes('"level":"WARN"')).length,
    error: lines.filter((l) => l.includes('"level":"ERROR"')).length,
  };
}
