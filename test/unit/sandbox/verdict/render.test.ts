import { describe, expect, it } from "vitest";
import { checkInvariants } from "../../../../sandbox/verdict/invariants";
import { decideOutcome } from "../../../../sandbox/verdict/outcome";
import { renderSummary } from "../../../../sandbox/verdict/render";
import { delta, facts } from "../../../support/run-facts";

/** The printed summary of constructed facts. */
describe("sandbox summary rendering", () => {
  it("a clean in-place run: the summary shows the per-rotation figures", () => {
    const f = facts();
    const results = checkInvariants(f);
    const text = renderSummary(f, results, decideOutcome(f, results));
    expect(text).toMatch(/instances replaced by the rollout +0 +0/);
    expect(text).toMatch(/jobs interrupted +0 +0/);
    expect(text).toMatch(/failed registrations +0 +0/);
    expect(text).toMatch(/promotion → revocation +none¹ +\+7\.0 s \(t1\)/);
  });

  it("under refresh: the jobs interrupted per rotation", () => {
    const f = facts();
    const second = f.rotations[1];
    if (second) second.fleet = delta({ replacedByRollout: 1, jobsInterrupted: 2 });
    f.strategy = "refresh";
    const results = checkInvariants(f);
    expect(renderSummary(f, results, decideOutcome(f, results))).toMatch(/jobs interrupted +0 +2/);
  });
});
