import { describe, expect, it } from "vitest";
import {
  type CfgFacts,
  checkInvariants,
  countTokenLeaks,
  decideOutcome,
  type FleetDelta,
  type InvariantResult,
  type RotationFacts,
  type RunFacts,
  renderSummary,
  type TokenFacts,
  unsafeForFinal,
} from "../../../../sandbox/verdict/summary";

/**
 * The sandbox's safety invariants, judged over constructed facts: a clean in-place run passes, and
 * each invariant fails on a fact set that violates exactly it.
 */
const t = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s));

const delta = (extra: Partial<FleetDelta> = {}): FleetDelta => ({
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

const rotation = (index: number, versionId: string, start: number): RotationFacts => ({
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

const token = (id: string, versionId: string | undefined, extra: Partial<TokenFacts> = {}): TokenFacts => ({
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

const cfg = (
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
function facts(): RunFacts {
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

const broken = (results: InvariantResult[]) => results.filter((r) => !r.ok).map((r) => r.id);

describe("sandbox invariants", () => {
  it("a clean in-place run: every invariant holds, exit 0, the summary shows the per-rotation figures", () => {
    const f = facts();
    const results = checkInvariants(f);
    expect(broken(results)).toEqual([]);
    expect(results.map((r) => r.id)).toEqual([
      "no-registration-with-revoked-token",
      "no-cfg-holds-revoked-token",
      "cfgs-hold-valid-tokens",
      "foreign-token-never-revoked",
      "one-managed-token-valid",
      "no-token-in-output",
      "every-instance-safe-for-final",
      "in-place-replaced-nothing",
    ]);
    const outcome = decideOutcome(f, results);
    expect(outcome).toMatchObject({ exitCode: 0, kind: "complete" });
    expect(outcome.headline).toContain("in place (0 instances replaced by the rollout, 0 jobs interrupted)");
    const text = renderSummary(f, results, outcome);
    expect(text).toMatch(/instances replaced by the rollout +0 +0/);
    expect(text).toMatch(/jobs interrupted +0 +0/);
    expect(text).toMatch(/failed registrations +0 +0/);
    expect(text).toMatch(/promotion → revocation +none¹ +\+7\.0 s \(t1\)/);
  });

  it("an agent refused with a revoked token", () => {
    const f = facts();
    f.registrations.push({ at: t(20), name: "i-late", tokenId: "t1", ok: false, status: 401 });
    expect(broken(checkInvariants(f))).toEqual(["no-registration-with-revoked-token"]);
    expect(decideOutcome(f, checkInvariants(f))).toMatchObject({ exitCode: 1, kind: "violations" });
  });

  it("a running instance's cfg still held the revoked token at the revocation", () => {
    const f = facts();
    f.revocations[0] = {
      tokenId: "t1",
      at: t(19),
      instances: [cfg("i-a", "us-east-1", "t2"), cfg("i-b", "eu-west-1", "t1")],
    };
    const results = checkInvariants(f);
    expect(broken(results)).toEqual(["no-cfg-holds-revoked-token"]);
    expect(results.find((r) => r.id === "no-cfg-holds-revoked-token")?.explanations[0]).toMatch(
      /token t1 was revoked at \+19\.0 s while eu-west-1\/windows-ASG instance i-b's cfg still held it/,
    );
  });

  it("a booting instance that had not read a newer token at the revocation (launched before its region synced)", () => {
    const f = facts();
    const booting = cfg("i-c", "eu-west-1", null, {
      bootFinished: false,
      lifecycleState: "Pending",
      launchTime: t(12.5),
    });
    f.revocations[0]?.instances.push(booting);
    f.finalCfgs.push({ ...booting, bootFinished: true, lifecycleState: "InService", cfgTokenId: "t2" });
    expect(broken(checkInvariants(f))).toEqual(["no-cfg-holds-revoked-token"]);
    // Launched after eu-west-1 served v2 (13 s): it can only have read the new token.
    if (f.revocations[0]?.instances[2]) f.revocations[0].instances[2].launchTime = t(13);
    expect(broken(checkInvariants(f))).toEqual([]);
    // Booting with the revoked rotation's token already in its cfg: not newer.
    if (f.revocations[0]?.instances[2]) f.revocations[0].instances[2].cfgTokenId = "initial";
    expect(broken(checkInvariants(f))).toEqual(["no-cfg-holds-revoked-token"]);
  });

  it("at the end a cfg holds a token that is no longer valid", () => {
    const f = facts();
    f.expect = "blocked";
    f.blockedOn = { kind: "instance", name: "i-b" };
    f.alerts = [{ subject: "blocked", message: "instance i-b unreachable" }];
    f.revocations = [];
    f.tokens = [
      token("initial", undefined),
      token("t1", "v1", { valid: false, revokedAt: null }),
      token("t2", "v2"),
    ];
    f.finalCfgs = [cfg("i-a", "us-east-1", "t2"), cfg("i-b", "eu-west-1", "t1")];
    expect(broken(checkInvariants(f))).toEqual(["cfgs-hold-valid-tokens", "old-token-still-valid"]);
  });

  it("a token this project did not make was revoked", () => {
    const f = facts();
    f.tokens[0] = token("initial", undefined, { revokedAt: t(25), valid: false });
    expect(broken(checkInvariants(f))).toEqual(["foreign-token-never-revoked"]);
  });

  it("two managed tokens valid at the end of a complete run", () => {
    const f = facts();
    f.tokens[1] = token("t1", "v1");
    f.revocations = [];
    expect(broken(checkInvariants(f))).toEqual(["one-managed-token-valid"]);
  });

  it("a blocked run: the previous token revoked, or no alert / an alert not naming the instance", () => {
    const f = facts();
    f.expect = "blocked";
    f.blockedOn = { kind: "instance", name: "i-b" };
    f.alerts = [{ subject: "rollout blocked", message: "i-b (SSM agent ConnectionLost)" }];
    f.tokens = [token("initial", undefined), token("t1", "v1"), token("t2", "v2")];
    f.revocations = [];
    f.finalCfgs = [cfg("i-a", "us-east-1", "t2"), cfg("i-b", "eu-west-1", "t1")];
    expect(broken(checkInvariants(f))).toEqual([]);
    expect(decideOutcome(f, checkInvariants(f))).toMatchObject({ exitCode: 2, kind: "blocked" });
    f.alerts = [{ subject: "rollout blocked", message: "some other instance" }];
    expect(broken(checkInvariants(f))).toEqual(["alerted-once"]);
    f.alerts = [];
    expect(broken(checkInvariants(f))).toEqual(["alerted-once"]);
    f.alerts = [{ subject: "blocked", message: "i-b" }];
    f.tokens[1] = token("t1", "v1", { valid: false, revokedAt: t(20) });
    expect(broken(checkInvariants(f))).toContain("old-token-still-valid");
  });

  it("a token value leaked into the output, a log or Run Command output", () => {
    const f = facts();
    f.tokenLeaks = 1;
    expect(broken(checkInvariants(f))).toEqual(["no-token-in-output"]);
    expect(
      countTokenLeaks(["result=installed", "x bkct_0123456789abcdef y"], ["bkct_0123456789abcdef"]),
    ).toBe(1);
  });

  it("an instance not safe for the final version: its cfg holds the old token and it launched before the sync", () => {
    const f = facts();
    f.finalCfgs[1] = cfg("i-b", "eu-west-1", "initial");
    const results = checkInvariants(f);
    expect(broken(results)).toEqual(["every-instance-safe-for-final"]);
    expect(unsafeForFinal(f)[0]).toMatch(
      /eu-west-1\/windows-ASG instance i-b \(Windows\) is not safe for version v2/,
    );
    // Launched after eu-west-1 served v2: safe whatever the cfg shows (it read the new token).
    f.finalCfgs[1] = cfg("i-b", "eu-west-1", "t2", { launchTime: t(14) });
    expect(broken(checkInvariants(f))).toEqual([]);
  });

  it("in place: an instance replaced or a job interrupted by the rollout is a violation; under refresh it is reported", () => {
    const f = facts();
    const second = f.rotations[1];
    if (second) second.fleet = delta({ replacedByRollout: 1, jobsInterrupted: 2 });
    const results = checkInvariants(f);
    expect(broken(results)).toEqual(["in-place-replaced-nothing"]);
    expect(results.find((r) => r.id === "in-place-replaced-nothing")?.explanations).toEqual([
      "rotation 2: 1 instance(s) replaced by the rollout, 2 job(s) interrupted",
    ]);
    f.strategy = "refresh";
    const refresh = checkInvariants(f);
    expect(broken(refresh)).toEqual([]);
    const outcome = decideOutcome(f, refresh);
    expect(outcome.headline).toContain(
      "by instance refresh (1 instances replaced by the rollout, 2 jobs interrupted)",
    );
    expect(renderSummary(f, refresh, outcome)).toMatch(/jobs interrupted +0 +2/);
  });
});
