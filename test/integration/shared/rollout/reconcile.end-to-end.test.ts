import { afterEach, describe, expect, it } from "vitest";
import { type FunctionHandler, startWorld, type World } from "../../../../sandbox/world/world";
import { decodeRefreshMarker, decodeRolloutMarker } from "../../../../shared/rollout/markers";
import { MARKER_TAG, ROLLOUT_TAG } from "../../../../shared/rollout/plan";
import { invariants } from "../../../support/invariants";
import { freshHandlers } from "../../../support/world-handlers";

/**
 * Whole rollouts through the real triggers: the real rotate-token and reconcile handlers, moto
 * (Secrets Manager, SSM, SNS, SQS) with simulated replication lag, the local Buildkite API, and an
 * Auto Scaling fleet whose instances boot by reading the token through the SSM reference path of
 * their region and registering with Buildkite — so a token revoked too early is a failed boot.
 */
const GROUPS = [
  { region: "us-east-1", name: "ci-linux", instances: 4, protectedInstances: 1 },
  { region: "us-east-1", name: "ci-docker", instances: 2 },
  { region: "us-west-2", name: "ci-linux", instances: 3, protectedInstances: 1 },
  { region: "eu-west-1", name: "ci-arm", instances: 2 },
];
/**
 * The refresh strategy with Wait completes only on groups without scale-in protection; the stock
 * stack protects every instance (the fleet's default), which the Ignore test keeps.
 */
const UNPROTECTED = GROUPS.map((g) => ({ ...g, newInstancesProtectedFromScaleIn: false }));

let world: World | undefined;
afterEach(async () => {
  await world?.stop();
  world = undefined;
});

async function start(
  extra: Partial<Parameters<typeof startWorld>[0]> = {},
  handlers?: { rotateToken: FunctionHandler; reconcile: FunctionHandler },
) {
  world = await startWorld({
    groups: UNPROTECTED,
    strategy: "refresh",
    replicaLagMs: 400,
    replaceMs: 60,
    jobMs: 200,
    timeoutsMs: { reconcile: 30_000 },
    handlers: handlers ?? (await freshHandlers()),
    ...extra,
  });
  return world;
}

async function groupTags(w: World, region: string, name: string) {
  return Object.fromEntries(
    (w.fleet.groups().find((g) => g.region === region && g.name === name)?.tags ?? []).map((t) => [
      t.key,
      t.value,
    ]),
  ) as Record<string, string>;
}

describe("rollout end to end, refresh strategy (3 regions, 4 groups)", { timeout: 240_000 }, () => {
  // EventBridge delivers a rule's events concurrently and in no guaranteed order (event-bus.ts
  // maxInFlight): the rollout must hold with the bus in order and out of order.
  it.each([1, 4])(
    "rotates twice: every boot registers, old managed tokens are revoked only after every refresh (bus deliveries in flight: %i)",
    async (inFlight) => {
      const w = await start({ busDeliveriesInFlight: inFlight });
      const first = await w.rotate();
      await w.settled(60_000);
      let state = invariants(w);
      expect(state.managedValid.map((t) => t.id)).toEqual([state.tokenFor(first.versionId)?.id]);

      const second = await w.rotate();
      await w.settled(60_000);
      state = invariants(w);
      // Exactly one managed token remains valid: the current one.
      expect(state.managedValid.map((t) => t.id)).toEqual([state.tokenFor(second.versionId)?.id]);
      const revokedAt = state.tokenFor(first.versionId)?.revokedAt?.getTime() ?? 0;
      expect(revokedAt).toBeGreaterThan(0);
      for (const g of GROUPS) {
        const refreshes = w.fleet.refreshes(g.region, g.name);
        // One refresh per rotation, newest first, each successful, each ended before the revocation.
        expect(refreshes.map((r) => r.status)).toEqual(["Successful", "Successful"]);
        expect(refreshes[0]?.endTime?.getTime() ?? Number.POSITIVE_INFINITY).toBeLessThanOrEqual(revokedAt);
        const marker = decodeRefreshMarker((await groupTags(w, g.region, g.name))[MARKER_TAG]);
        expect(marker).toMatchObject({
          versionId: second.versionId,
          refreshId: refreshes[0]?.instanceRefreshId,
        });
      }
      // Every simulated boot read a valid token and registered.
      expect(state.failedBoots).toEqual([]);
      expect(state.failedRegistrations).toEqual([]);
      expect(state.boots.length).toBeGreaterThanOrEqual(2 * GROUPS.reduce((n, g) => n + g.instances, 0));
      // The initial token was made by a human: never revoked by us.
      expect(w.buildkite.tokens().find((t) => t.id === w.stack.initialToken.id)?.valid).toBe(true);
      expect(await w.alerts()).toEqual([]);
      const rollout = decodeRolloutMarker((await groupTags(w, "us-east-1", "ci-linux"))[ROLLOUT_TAG]);
      expect(rollout).toMatchObject({ versionId: second.versionId, complete: true });
    },
  );

  it("someone else's refresh running at the rotation: ours is refused, starts once that one ended, and the rollout completes", async () => {
    // Reconcile reads no refresh history where no tag of ours names the version: the refused
    // StartInstanceRefresh (InstanceRefreshInProgress) is what tells it another refresh runs.
    const w = await start({ replaceMs: 300 });
    const first = await w.rotate();
    await w.settled(60_000);
    const external = w.fleet.startExternalRefresh("us-east-1", "ci-docker");
    const second = await w.rotate();
    await w.settled(60_000);
    const state = invariants(w);
    expect(state.managedValid.map((t) => t.id)).toEqual([state.tokenFor(second.versionId)?.id]);
    expect(state.tokenFor(first.versionId)?.valid).toBe(false);
    const [ours, theirs] = w.fleet.refreshes("us-east-1", "ci-docker");
    expect(theirs?.instanceRefreshId).toBe(external);
    expect(theirs?.origin).toBe("external");
    expect(theirs?.status).toBe("Successful");
    expect(ours?.status).toBe("Successful");
    // Ours began only after theirs ended, and the revocation came after ours.
    expect(ours?.startTime.getTime() ?? 0).toBeGreaterThanOrEqual(
      theirs?.endTime?.getTime() ?? Number.POSITIVE_INFINITY,
    );
    const revokedAt = state.tokenFor(first.versionId)?.revokedAt?.getTime() ?? 0;
    expect(revokedAt).toBeGreaterThanOrEqual(ours?.endTime?.getTime() ?? Number.POSITIVE_INFINITY);
    expect(await w.alerts()).toEqual([]);
  });

  it("a failed refresh leaves the old token valid and raises exactly one alert", async () => {
    const w = await start();
    const first = await w.rotate();
    await w.settled(60_000);
    w.fleet.failRefreshes({ region: "eu-west-1" });
    const second = await w.rotate();
    await w.settled(60_000);
    // The schedule keeps firing: level-triggered runs must not alert again.
    for (let i = 0; i < 3; i++) {
      w.schedule();
      await w.settled(30_000);
    }
    const state = invariants(w);
    expect(state.tokenFor(first.versionId)?.valid).toBe(true);
    expect(state.tokenFor(second.versionId)?.valid).toBe(true);
    const alerts = await w.alerts();
    expect(alerts).toHaveLength(1);
    expect(alerts[0]?.subject).toContain("eu-west-1");
    expect(alerts[0]?.message).toMatch(/What: .*\nEffect: .*\nTo do: /s);
    expect(state.failedRegistrations).toEqual([]);
  });

  it("with ScaleInProtectedInstances=Ignore, skipped instances block revocation and raise an alert per refresh", async () => {
    const w = await start({ groups: GROUPS, refresh: { scaleInProtectedInstances: "Ignore" } });
    const first = await w.rotate();
    await w.settled(60_000);
    await w.rotate();
    await w.settled(60_000);
    // Protected instances were skipped, so the rollout never counts as complete: v1 stays valid.
    expect(invariants(w).tokenFor(first.versionId)?.valid).toBe(true);
    const subjects = (await w.alerts()).map((a) => a.subject);
    expect(subjects.length).toBeGreaterThan(0);
    for (const subject of subjects) expect(subject).toContain("refresh left old instances");
    expect(invariants(w).failedRegistrations).toEqual([]);
  });

  it("a missing replica blocks its region and alerts; once healed, the rollout completes", async () => {
    const w = await start();
    const first = await w.rotate();
    await w.settled(60_000);
    await w.replicator.remove("us-west-2");
    const second = await w.rotate();
    await w.settled(60_000);
    expect(invariants(w).tokenFor(first.versionId)?.valid).toBe(true);
    expect(w.fleet.refreshes("us-west-2", "ci-linux")).toHaveLength(1);
    const alerts = await w.alerts();
    expect(alerts.map((a) => a.subject)).toEqual([
      expect.stringContaining("us-west-2 does not serve the new token"),
    ]);

    await w.replicator.heal("us-west-2");
    // The healed replica appears after the replication lag; the next schedule tick picks it up.
    await w.replicator.whenInSync(second.versionId, 10_000);
    w.schedule();
    await w.settled(60_000);
    const state = invariants(w);
    expect(state.tokenFor(first.versionId)?.valid).toBe(false);
    expect(state.managedValid.map((t) => t.id)).toEqual([state.tokenFor(second.versionId)?.id]);
    expect(state.failedRegistrations).toEqual([]);
  });

  it("repeated and out-of-order triggers change nothing a single trigger would not", async () => {
    const w = await start();
    // Before any rotation: the schedule and a stray label event for an unknown version.
    for (let i = 0; i < 3; i++) w.schedule();
    w.bus.put(
      w.bus.labelUpdated({
        secretArn: w.secretArn,
        region: w.primaryRegion,
        versionId: "00000000-0000-4000-8000-000000000000",
      }),
    );
    await w.settled(30_000);
    for (const g of GROUPS) expect(w.fleet.refreshes(g.region, g.name)).toEqual([]);
    expect(w.buildkite.tokens()).toHaveLength(1);

    const { versionId } = await w.rotate();
    // The same label event twice more, and the schedule firing mid-rollout.
    const label = w.bus.labelUpdated({ secretArn: w.secretArn, region: w.primaryRegion, versionId });
    w.bus.put(label);
    w.schedule();
    w.bus.put(label);
    await w.settled(60_000);
    w.schedule();
    await w.settled(30_000);
    for (const g of GROUPS) expect(w.fleet.refreshes(g.region, g.name)).toHaveLength(1);
    const state = invariants(w);
    expect(state.managedValid.map((t) => t.id)).toEqual([state.tokenFor(versionId)?.id]);
    expect(w.buildkite.tokens()).toHaveLength(2);
    expect(await w.alerts()).toEqual([]);
    expect(w.lambda.invocations().filter((i) => i.name === "reconcile" && !i.ok)).toEqual([]);
  });
});
