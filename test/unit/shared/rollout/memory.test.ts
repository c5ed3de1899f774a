import { describe, expect, it } from "vitest";
import { RolloutMemory } from "../../../../shared/rollout/memory";
import { plan } from "../../../../shared/rollout/plan";
import type { PlanSettings } from "../../../../shared/rollout/types";
import {
  IN_PLACE_SETTINGS,
  NOW,
  observation,
  ours,
  refresh,
  replaced,
  target,
  V2,
} from "../../../support/rollout-fixtures";

const settings: PlanSettings = { ...IN_PLACE_SETTINGS, strategy: "refresh", clockSkewMs: 0 };

/** A full observation: our refreshes of ci-a and ci-b still in progress. */
const twoRefreshing = () =>
  observation({
    targets: [
      target("us-east-1", "ci-a", ours(V2, "r-a", "InProgress")),
      target("eu-west-1", "ci-b", ours(V2, "r-b", "InProgress")),
    ],
  });

/** A partial observation of ci-b alone, its instances replaced. */
const ciBReplaced = () =>
  observation({
    scope: "partial",
    tokens: [],
    managedVersion: V2,
    targets: [target("eu-west-1", "ci-b", { ...ours(V2, "r-b"), members: replaced("ci-b") })],
  });

describe("RolloutMemory", () => {
  it("remembers a full observation's pending groups, and a partial plan's progress on them", () => {
    const memory = new RolloutMemory();
    const full = twoRefreshing();
    memory.afterPlan(full, plan(full, settings));
    expect(memory.recollect()).toMatchObject({
      versionId: V2,
      fullStartedAt: NOW,
      managed: true,
      anchor: { region: "us-east-1", groupName: "ci-a" },
      notDone: ["us-east-1:ci-a", "eu-west-1:ci-b"],
    });
    const partial = ciBReplaced();
    memory.afterPlan(partial, plan(partial, settings));
    expect(memory.recollect()?.notDone).toEqual(["us-east-1:ci-a"]);
  });

  it("knows our refresh of each pending group, notes reported successes, and forgets those a look saw", () => {
    const memory = new RolloutMemory();
    const full = twoRefreshing();
    memory.afterPlan(full, plan(full, settings));
    expect(memory.recollect()?.refreshIds).toEqual({ "us-east-1:ci-a": "r-a", "eu-west-1:ci-b": "r-b" });
    memory.noteStarted(V2, [{ region: "us-east-1", groupName: "ci-a", refreshId: "r-a2" }]);
    memory.noteStarted("v9", [{ region: "us-east-1", groupName: "ci-a", refreshId: "r-other" }]);
    expect(memory.recollect()?.refreshIds["us-east-1:ci-a"]).toBe("r-a2");
    // Only groups not done are noted; a repeat is noted once.
    memory.noteReported(["eu-west-1:ci-b", "eu-west-1:ci-b", "us-east-1:ci-z"]);
    expect(memory.recollect()?.reported).toEqual(["eu-west-1:ci-b"]);
    const partial = ciBReplaced();
    memory.afterPlan(partial, plan(partial, settings));
    expect(memory.recollect()?.reported).toEqual([]);
    // A new full observation starts over.
    memory.noteReported(["us-east-1:ci-a"]);
    memory.afterPlan(full, plan(full, settings));
    expect(memory.recollect()?.reported).toEqual([]);
  });

  it("knows the refresh each done group was found done with, from full and partial looks", () => {
    const memory = new RolloutMemory();
    const full = twoRefreshing();
    memory.afterPlan(full, plan(full, settings));
    expect(memory.recollect()?.doneRefreshIds).toEqual({});
    const partial = ciBReplaced();
    memory.afterPlan(partial, plan(partial, settings));
    expect(memory.recollect()?.doneRefreshIds).toEqual({ "eu-west-1:ci-b": "r-b" });
    // A new full observation starts over from what it found.
    memory.afterPlan(full, plan(full, settings));
    expect(memory.recollect()?.doneRefreshIds).toEqual({});
  });

  it("lets a run ask the queue for a catch-up at most once per interval, and catch up at most max times a version", () => {
    const memory = new RolloutMemory();
    const t0 = new Date("2026-12-01T12:00:00Z");
    const at = (ms: number) => new Date(t0.getTime() + ms);
    // No summary yet (a cold container): nothing to catch up with.
    expect(memory.catchUpDue(t0, 1_000, 2)).toBe(false);
    const full = twoRefreshing();
    memory.afterPlan(full, plan(full, settings));
    expect(memory.catchUpDue(t0, 1_000, 2)).toBe(true);
    expect(memory.catchUpDue(at(999), 1_000, 2)).toBe(false);
    expect(memory.catchUpDue(at(1_000), 1_000, 2)).toBe(true);
    memory.noteCatchUp();
    expect(memory.catchUpDue(at(2_000), 1_000, 2)).toBe(true);
    memory.noteCatchUp();
    expect(memory.catchUpDue(at(9_000), 1_000, 2)).toBe(false);
  });

  it("does not call a version managed when the full observation found no token of ours for it", () => {
    const memory = new RolloutMemory();
    const full = observation({ tokens: [] });
    memory.afterPlan(full, plan(full, settings));
    expect(memory.recollect()?.managed).toBe(false);
  });

  it("keeps only refreshes in a final status, per group and id", () => {
    const memory = new RolloutMemory();
    memory.rememberRefreshes("us-east-1", "ci-a", [
      refresh("r-1", "Successful"),
      refresh("r-2", "InProgress"),
      refresh("r-3", "Baking"),
    ]);
    expect(memory.finalRefresh("us-east-1", "ci-a", "r-1")?.status).toBe("Successful");
    expect(memory.finalRefresh("us-east-1", "ci-a", "r-2")).toBeUndefined();
    expect(memory.finalRefresh("us-east-1", "ci-a", "r-3")).toBeUndefined();
    expect(memory.finalRefresh("eu-west-1", "ci-a", "r-1")).toBeUndefined();
  });

  it("a partial plan of another version changes nothing; forget() drops the summary, not the facts", () => {
    const memory = new RolloutMemory();
    const full = observation();
    memory.afterPlan(full, plan(full, settings));
    memory.rememberCreatedAt({ v9: NOW });
    const other = observation(
      { scope: "partial", tokens: [], managedVersion: "v9", targets: [] },
      { current: "v9" },
    );
    memory.afterPlan(other, plan(other, settings));
    expect(memory.recollect()?.versionId).toBe(V2);
    memory.forget();
    expect(memory.recollect()).toBeUndefined();
    expect(memory.versionCreatedAt("v9")).toEqual(NOW);
  });
});
