import { describe, expect, it } from "vitest";
import { checkInvariants, countTokenLeaks, unsafeForFinal } from "../../../../sandbox/verdict/invariants";
import { IN_PLACE_COMPLETE_INVARIANTS } from "../../../support/invariants";
import { blockedRun, broken, cfg, delta, facts, t, token } from "../../../support/run-facts";

/**
 * The sandbox's safety invariants, judged over constructed facts: a clean in-place run passes, and
 * each invariant fails on a fact set that violates exactly it.
 */
describe("sandbox invariants", () => {
  it("a clean in-place run: every invariant holds", () => {
    const f = facts();
    const results = checkInvariants(f);
    expect(broken(results)).toEqual([]);
    expect(results.map((r) => r.id)).toEqual(IN_PLACE_COMPLETE_INVARIANTS);
  });

  it("an agent refused with a revoked token", () => {
    const f = facts();
    f.registrations.push({ at: t(20), name: "i-late", tokenId: "t1", ok: false, status: 401 });
    expect(broken(checkInvariants(f))).toEqual(["no-registration-with-revoked-token"]);
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
    const f = blockedRun();
    expect(broken(checkInvariants(f))).toEqual([]);
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

  it("in place: an instance replaced or a job interrupted by the rollout is a violation; under refresh it is not", () => {
    const f = facts();
    const second = f.rotations[1];
    if (second) second.fleet = delta({ replacedByRollout: 1, jobsInterrupted: 2 });
    const results = checkInvariants(f);
    expect(broken(results)).toEqual(["in-place-replaced-nothing"]);
    expect(results.find((r) => r.id === "in-place-replaced-nothing")?.explanations).toEqual([
      "rotation 2: 1 instance(s) replaced by the rollout, 2 job(s) interrupted",
    ]);
    f.strategy = "refresh";
    expect(broken(checkInvariants(f))).toEqual([]);
  });
});
