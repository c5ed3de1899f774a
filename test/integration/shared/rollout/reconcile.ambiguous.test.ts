import { AutoScalingClient, CreateOrUpdateTagsCommand } from "@aws-sdk/client-auto-scaling";
import { afterEach, describe, expect, it } from "vitest";
import { type AwsFaultProxy, startAwsFaultProxy } from "../../../../sandbox/fakes/aws/aws-fault-proxy";
import { TEST_CREDENTIALS } from "../../../../sandbox/world/rotation-stack";
import { startWorld, type World, type WorldOptions } from "../../../../sandbox/world/world";
import {
  EMERGENCY_TAG,
  encodeEmergency,
  encodeRefreshMarker,
  MARKER_TAG,
} from "../../../../shared/rollout/markers";
import { invariants } from "../../../support/invariants";
import { freshHandlers } from "../../../support/world-handlers";

/**
 * Lost responses and forged tags, end to end: a fault proxy between reconcile and the Auto Scaling
 * or Run Command stand-in forwards a call, lets it commit, then drops the response; our own tags
 * are rewritten by "someone else". Each converges without doubled work, premature revocation or a
 * stuck rollout.
 */
let world: World | undefined;
let proxy: AwsFaultProxy | undefined;
afterEach(async () => {
  await world?.stop();
  await proxy?.close();
  world = undefined;
  proxy = undefined;
});

async function start(extra: Partial<WorldOptions>, proxied: "AUTO_SCALING" | "SSM") {
  world = await startWorld({
    replicaRegions: [],
    groups: [{ region: "us-east-1", name: "ci", instances: 3, newInstancesProtectedFromScaleIn: false }],
    replaceMs: 60,
    timeoutsMs: { reconcile: 60_000 },
    runCommand: { linuxStep: "mirror", invocationDelayMs: 200, commandLatencyMs: 100 },
    handlers: await freshHandlers(),
    ...extra,
  });
  const key = `AWS_ENDPOINT_URL_${proxied}`;
  proxy = await startAwsFaultProxy({ upstream: world.env[key] ?? "" });
  // The handlers build their clients at their first invocation: from now on reconcile goes through the proxy.
  process.env[key] = proxy.url;
  return { w: world, p: proxy };
}

const tag = async (w: World, region: string, key: string, value: string) => {
  const client = new AutoScalingClient({ region, endpoint: w.autoScalingUrl, credentials: TEST_CREDENTIALS });
  await client.send(
    new CreateOrUpdateTagsCommand({
      Tags: [
        {
          ResourceId: "ci",
          ResourceType: "auto-scaling-group",
          Key: key,
          Value: value,
          PropagateAtLaunch: false,
        },
      ],
    }),
  );
  client.destroy();
};

/** Two rotations converged: one successful refresh each, the first token revoked, only the second valid. */
function expectConverged(w: World, firstVersion: string, secondVersion: string): void {
  expect(w.fleet.refreshes("us-east-1", "ci").map((r) => r.status)).toEqual(["Successful", "Successful"]);
  const state = invariants(w);
  expect(state.tokenFor(firstVersion)?.valid).toBe(false);
  expect(state.managedValid.map((t) => t.id)).toEqual([state.tokenFor(secondVersion)?.id]);
}

describe("ambiguous outcomes and forged tags", { timeout: 240_000 }, () => {
  it("a lost StartInstanceRefresh response starts no second refresh: the next run adopts it", async () => {
    const { w, p } = await start({ strategy: "refresh" }, "AUTO_SCALING");
    const first = await w.rotate();
    await w.settled(60_000);
    p.addFault({
      operation: "StartInstanceRefresh",
      action: { kind: "drop-response" },
      times: Number.POSITIVE_INFINITY,
    });
    const second = await w.rotate();
    await w.settled(60_000);
    p.clearFaults();
    w.schedule();
    await w.settled(60_000);
    // Two rotations, two refreshes: the lost response did not make a third.
    expectConverged(w, first.versionId, second.versionId);
    expect(
      p.calls().filter((c) => c.operation === "StartInstanceRefresh" && c.outcome === "dropped").length,
    ).toBeGreaterThan(0);
  });

  it.each([
    ["lost (committed, then the connection reset)", { kind: "drop-response" as const }],
    ["refused (throttled, not forwarded)", { kind: "throttle" as const }],
  ])(
    "a StartInstanceRefresh %s is looked at again within the run: no schedule needed, no second refresh",
    async (_, action) => {
      const { w, p } = await start({ strategy: "refresh" }, "AUTO_SCALING");
      const first = await w.rotate();
      await w.settled(60_000);
      p.addFault({ operation: "StartInstanceRefresh", action, times: 1 });
      const second = await w.rotate();
      await w.settled(60_000);
      // No schedule event: the run that saw the failure looked at the group again (adopting the
      // refresh the lost response hid, or starting the one that was refused) and the rollout ended.
      expectConverged(w, first.versionId, second.versionId);
      expect(
        p.calls().filter((c) => c.operation === "StartInstanceRefresh" && c.outcome !== "forwarded"),
      ).toHaveLength(1);
    },
  );

  it("a lost SendCommand response is not resent: the command it created is found and its results count", async () => {
    const { w, p } = await start({}, "SSM");
    await w.rotate();
    await w.settled(60_000);
    p.addFault({ operation: "SendCommand", action: { kind: "drop-response" }, times: 1 });
    const before = w.runCommand.invocations().length;
    const callsBefore = p.calls().length;
    const second = await w.rotate();
    await w.settled(60_000);
    const state = invariants(w);
    expect(state.managedValid.map((t) => t.id)).toEqual([state.tokenFor(second.versionId)?.id]);
    // One invocation per instance for the second rotation: the lost response did not double the work.
    const invocations = w.runCommand.invocations().slice(before);
    expect(invocations.map((i) => i.instanceId).sort()).toEqual(
      w.fleet
        .instances("us-east-1", "ci")
        .map((i) => i.instanceId)
        .sort(),
    );
    // The only SendCommand of this rotation is the one whose response was lost: nothing was resent.
    const sends = p
      .calls()
      .slice(callsBefore)
      .filter((c) => c.operation === "SendCommand");
    expect(sends.map((c) => c.outcome)).toEqual(["dropped"]);
  });

  it("an emergency tag naming the current version as leaked revokes nothing and alerts", async () => {
    const { w } = await start({}, "SSM");
    await w.rotate();
    await w.settled(60_000);
    const current = await w.rotate();
    await w.settled(60_000);
    await tag(
      w,
      "us-east-1",
      EMERGENCY_TAG,
      encodeEmergency({
        versionId: current.versionId,
        leakedVersionId: current.versionId,
        minHealthyPercentage: 50,
      }),
    );
    w.schedule();
    await w.settled(60_000);
    expect(invariants(w).tokenFor(current.versionId)?.valid).toBe(true);
    const alerts = await w.alerts();
    expect(alerts.map((a) => a.subject)).toEqual([expect.stringContaining("names a live version as leaked")]);
    expect(invariants(w).failedRegistrations).toEqual([]);
  });

  it("a refresh tag pointing at an older successful refresh does not count as the new version's refresh", async () => {
    // The group's region has no replica: reconcile may not touch the group while the tag is forged.
    // (A tag forged during a short replica wait is overwritten unread by our refresh intent: the
    // run plans those groups on the look it made before the wait, rounds.ts lookAfterSync.)
    const { w } = await start(
      {
        strategy: "refresh",
        replicaRegions: ["us-west-2"],
        groups: [{ region: "us-west-2", name: "ci", instances: 3, newInstancesProtectedFromScaleIn: false }],
      },
      "AUTO_SCALING",
    );
    const first = await w.rotate();
    await w.settled(60_000);
    const old = w.fleet.refreshes("us-west-2", "ci")[0];
    await w.replicator.remove("us-west-2");
    const second = await w.rotate();
    await w.settled(60_000);
    // Forged a while after that refresh started (more than the tolerated clock skew of 5 s).
    await new Promise((resolve) => setTimeout(resolve, 6_000));
    // Someone points the marker at the first rotation's (successful) refresh.
    await tag(
      w,
      "us-west-2",
      MARKER_TAG,
      encodeRefreshMarker({
        versionId: second.versionId,
        intentAt: new Date(),
        refreshId: old?.instanceRefreshId,
      }),
    );
    await w.replicator.heal("us-west-2");
    await w.replicator.whenInSync(second.versionId, 10_000);
    w.schedule();
    await w.settled(60_000);
    // It was ignored: a third refresh replaced the old instances before the old token was revoked.
    const refreshes = w.fleet.refreshes("us-west-2", "ci");
    expect(refreshes.map((r) => r.status)).toEqual(["Successful", "Successful"]);
    const state = invariants(w);
    const revokedAt = state.tokenFor(first.versionId)?.revokedAt?.getTime() ?? 0;
    expect(revokedAt).toBeGreaterThanOrEqual(refreshes[0]?.endTime?.getTime() ?? Number.POSITIVE_INFINITY);
    expect(state.failedRegistrations).toEqual([]);
    const subjects = (await w.alerts()).map((a) => a.subject ?? "");
    expect(subjects).toEqual([
      expect.stringContaining("us-west-2 does not serve the new token"),
      expect.stringContaining("ignored an invalid refresh tag"),
    ]);
  });
});
