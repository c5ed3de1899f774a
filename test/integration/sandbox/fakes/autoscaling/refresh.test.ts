/**
 * Instance refreshes on a stock (all protected) group (sandbox/fakes/autoscaling/refresh.ts)
 * through the real Auto Scaling client, under Wait, Refresh and Ignore.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import {
  REGION,
  refreshStatus,
  startRefresh,
  untilRefreshEnds,
  useStockFleet,
} from "../../../../support/fleet-fixture";

const sf = useStockFleet();
const { start, currentToken } = sf;

describe("instance refresh on a stock (all protected) group", () => {
  it("Wait: protected instances block the refresh, which fails after the wait with nothing replaced", async () => {
    const f = await start([{ region: REGION, name: "agents", instances: 2 }], { protectedWaitMs: 400 });
    const id = await startRefresh(f, "agents", "Wait");
    await sleep(150);
    expect((await refreshStatus(f, "agents", id)).Status).toBe("InProgress");
    const refresh = await untilRefreshEnds(f, "agents", id);
    expect(refresh.Status).toBe("Failed");
    expect(refresh.StatusReason).toContain("protected from scale in");
    expect(refresh.PercentageComplete).toBe(0);
    expect((refresh.EndTime?.getTime() ?? 0) - (refresh.StartTime?.getTime() ?? 0)).toBeGreaterThanOrEqual(
      400,
    );
    expect(f.autoScaling.fleet.boots()).toEqual([]);
    expect(f.autoScaling.fleet.counters()).toMatchObject({ replacedByRollout: 0, jobsInterrupted: 0 });
  });

  it("the Wait failure reason is configurable (AWS documents the behaviour, not the text)", async () => {
    const f = await start([{ region: REGION, name: "agents", instances: 1 }], {
      protectedWaitMs: 50,
      protectedWaitReason: (ids) => `custom: ${ids.join(",")}`,
    });
    const id = await startRefresh(f, "agents", "Wait");
    const refresh = await untilRefreshEnds(f, "agents", id);
    expect(refresh.StatusReason).toBe(
      `custom: ${f.autoScaling.fleet.instances(REGION, "agents")[0]?.instanceId}`,
    );
  });

  it("Refresh: replaces protected instances and counts their running jobs as interrupted", async () => {
    const f = await start([
      { region: REGION, name: "agents", instances: 4, jobs: { busyAtStart: 2, schedule: [60_000] } },
    ]);
    const fleet = f.autoScaling.fleet;
    const before = fleet.instances(REGION, "agents").map((i) => i.instanceId);
    expect(fleet.instances(REGION, "agents").filter((i) => i.busy)).toHaveLength(2);
    const id = await startRefresh(f, "agents", "Refresh");
    expect((await untilRefreshEnds(f, "agents", id)).Status).toBe("Successful");
    const after = fleet.instances(REGION, "agents").map((i) => i.instanceId);
    expect(after.filter((i) => before.includes(i))).toEqual([]);
    expect(fleet.counters()).toMatchObject({
      replacedByRollout: 4,
      jobsInterrupted: 2,
      selfTerminated: 0,
      churnLaunches: 0,
    });
    expect([...fleet.counters().replacedByRolloutIds].sort()).toEqual([...before].sort());
    // The replacements booted through SSM with the current token and are protected as well.
    const token = await currentToken();
    const boots = new Set(fleet.boots().map((b) => b.instanceId));
    const registered = sf.stack.buildkite.registrations().filter((r) => boots.has(r.name));
    expect(registered.map((r) => r.tokenId)).toEqual([token.id, token.id, token.id, token.id]);
    expect(fleet.instances(REGION, "agents").every((i) => i.protectedFromScaleIn)).toBe(true);
  });

  it("Ignore: skips protected instances and ends Successful with them left", async () => {
    const f = await start([{ region: REGION, name: "agents", instances: 3 }]);
    const before = f.autoScaling.fleet.instances(REGION, "agents").map((i) => i.instanceId);
    const id = await startRefresh(f, "agents", "Ignore");
    const refresh = await untilRefreshEnds(f, "agents", id);
    expect(refresh).toMatchObject({ Status: "Successful", PercentageComplete: 0, InstancesToUpdate: 3 });
    expect(refresh.StatusReason).toContain("3 instance(s) were not replaced");
    expect(f.autoScaling.fleet.instances(REGION, "agents").map((i) => i.instanceId)).toEqual(before);
    expect(f.autoScaling.fleet.counters().replacedByRollout).toBe(0);
  });
});
