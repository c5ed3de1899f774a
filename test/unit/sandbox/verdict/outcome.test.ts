import { describe, expect, it } from "vitest";
import { checkInvariants } from "../../../../sandbox/verdict/invariants";
import { decideOutcome } from "../../../../sandbox/verdict/outcome";
import { blockedRun, delta, facts, t } from "../../../support/run-facts";

/** The outcome and exit code of a run, decided from constructed facts and the invariants' results. */
describe("sandbox outcome", () => {
  it("a clean in-place run: exit 0, complete, the headline says nothing was replaced", () => {
    const f = facts();
    const outcome = decideOutcome(f, checkInvariants(f));
    expect(outcome).toMatchObject({ exitCode: 0, kind: "complete" });
    expect(outcome.headline).toContain("in place (0 instances replaced by the rollout, 0 jobs interrupted)");
  });

  it("a broken invariant (an agent refused with a revoked token): exit 1, violations", () => {
    const f = facts();
    f.registrations.push({ at: t(20), name: "i-late", tokenId: "t1", ok: false, status: 401 });
    expect(decideOutcome(f, checkInvariants(f))).toMatchObject({ exitCode: 1, kind: "violations" });
  });

  it("a blocked run with every invariant intact: exit 2, blocked", () => {
    const f = blockedRun();
    expect(decideOutcome(f, checkInvariants(f))).toMatchObject({ exitCode: 2, kind: "blocked" });
  });

  it("under refresh: the headline reports the instances replaced and the jobs interrupted", () => {
    const f = facts();
    const second = f.rotations[1];
    if (second) second.fleet = delta({ replacedByRollout: 1, jobsInterrupted: 2 });
    f.strategy = "refresh";
    const outcome = decideOutcome(f, checkInvariants(f));
    expect(outcome.headline).toContain(
      "by instance refresh (1 instances replaced by the rollout, 2 jobs interrupted)",
    );
  });
});
