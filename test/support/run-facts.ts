/**
 * Constructed sandbox run facts for the verdict's unit tests: two in-place rotations on two stacks
 * that every invariant passes; each test breaks one fact.
 */

import type { CfgFacts, FleetDelta, RotationFacts, RunFacts, TokenFacts } from "../../sandbox/verdict/facts";
import type { InvariantResult } from "../../sandbox/verdict/invariants";

export const t = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s));

export const delta = (extra: Partial<FleetDelta> = {}): FleetDelta => ({
  replacedByRollout: 0,
  jobsInterrupted: 0,
  selfTerminated: 0,
  churnLaunches: 0,
  failedRegistrations: 0,
  agentRestarts: 0,
  installInvocations: 2,
  installFailures: 0,
  ...extra,
});

export const rotation = (index: number, versionId: string, start: number): RotationFacts => ({
  index,
  versionId,
  startedAt: t(start),
  promotedAt: t(start + 1),
  replicasInSyncAt: { "eu-west-1": t(start + 2) },
  attempts: 1,
  error: undefined,
  failRefreshRegion: undefined,
  ssmOutage: undefined,
  reconcileRuns: 1,
  reconcileFailures: 0,
  schedulesFired: 0,
  timedOut: false,
  endedAt: t(start + 9),
  fleet: delta(),
});

export const token = (
  id: string,
  versionId: string | undefined,
  extra: Partial<TokenFacts> = {},
): TokenFacts => ({
  id,
  description: versionId ? `managed ${versionId}` : "Initial agent token",
  versionId,
  createdAt: t(0),
  revokedAt: null,
  valid: true,
  initial: versionId === undefined,
  storedInSecret: true,
  ...extra,
});

export const cfg = (
  instanceId: string,
  region: string,
  cfgTokenId: string | null,
  extra: Partial<CfgFacts> = {},
): CfgFacts => ({
  region,
  groupName: region === "us-east-1" ? "linux-ASG" : "windows-ASG",
  instanceId,
  platform: region === "us-east-1" ? "Linux" : "Windows",
  lifecycleState: "InService",
  bootFinished: true,
  launchTime: t(-100),
  cfgTokenId,
  ...extra,
});

/** Two in-place rotations on two stacks; t1 (rotation 1's token) revoked at 19 s, when both cfgs held t2. */
export function facts(): RunFacts {
  return {
    expect: "complete",
    strategy: "in-place",
    blockedOn: undefined,
    failRefreshRegion: undefined,
    injected: { replicaLagSeconds: undefined, buildkiteFlaky: false },
    primaryRegion: "us-east-1",
    replicaRegions: ["eu-west-1"],
    groups: [
      {
        region: "us-east-1",
        name: "linux-ASG",
        stackName: "linux",
        platform: "Linux",
        instances: 1,
        busyAtStart: 1,
      },
      {
        region: "eu-west-1",
        name: "windows-ASG",
        stackName: "windows",
        platform: "Windows",
        instances: 1,
        busyAtStart: 0,
      },
    ],
    startedAt: t(0),
    worldReadyAt: t(0),
    endedAt: t(30),
    rotations: [rotation(1, "v1", 1), rotation(2, "v2", 11)],
    tokens: [
      token("initial", undefined),
      token("t1", "v1", { createdAt: t(1), revokedAt: t(19), valid: false }),
      token("t2", "v2", { createdAt: t(11) }),
    ],
    refreshes: [],
    registrations: [],
    revocations: [
      { tokenId: "t1", at: t(19), instances: [cfg("i-a", "us-east-1", "t2"), cfg("i-b", "eu-west-1", "t2")] },
    ],
    finalCfgs: [cfg("i-a", "us-east-1", "t2"), cfg("i-b", "eu-west-1", "t2")],
    alerts: [],
    buildkiteRequests: { total: 10, failed: 0 },
    tokenLeaks: 0,
    logLines: { total: 0, warn: 0, error: 0 },
  };
}

export const broken = (results: InvariantResult[]) => results.filter((r) => !r.ok).map((r) => r.id);

/** The clean run, blocked on instance i-b (its SSM agent unreachable): one alert naming it, nothing revoked. */
export function blockedRun(): RunFacts {
  const f = facts();
  f.expect = "blocked";
  f.blockedOn = { kind: "instance", name: "i-b" };
  f.alerts = [{ subject: "rollout blocked", message: "i-b (SSM agent ConnectionLost)" }];
  f.tokens = [token("initial", undefined), token("t1", "v1"), token("t2", "v2")];
  f.revocations = [];
  f.finalCfgs = [cfg("i-a", "us-east-1", "t2"), cfg("i-b", "eu-west-1", "t1")];
  return f;
}
