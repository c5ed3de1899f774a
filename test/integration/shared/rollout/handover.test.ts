import { afterEach, describe, expect, it } from "vitest";
import { startWorld, type World } from "../../../../sandbox/world/world";
import { invariants } from "../../../support/invariants";
import { freshHandlers } from "../../../support/world-handlers";

/**
 * The handover through the real queue path: moto's FIFO queue, the event source mapping stand-in,
 * the real reconcile handler. While the run waits for slow install commands, triggers queue behind
 * it; the run sends its continuation and ends, the waiting triggers go first, and the rollout still
 * completes with every invariant.
 */
let world: World | undefined;
afterEach(async () => {
  await world?.stop();
  world = undefined;
});

const COMMAND_MS = 8_000;

describe("handover: a run that only waits lets the triggers behind it through", { timeout: 240_000 }, () => {
  it("the schedule put during a slow in-place rollout waits less than the commands take", async () => {
    const w = await startWorld({
      groups: [{ region: "us-east-1", name: "ci", instances: 2, newInstancesProtectedFromScaleIn: true }],
      strategy: "in-place",
      replicaLagMs: 100,
      timeoutsMs: { reconcile: 120_000 },
      // The commands run for COMMAND_MS: a run that polled them would hold the queue that long.
      runCommand: { linuxStep: "mirror", invocationDelayMs: 100, commandLatencyMs: COMMAND_MS },
      inPlace: { retrySeconds: 60, fallbackAfterSeconds: 120 },
      handlers: await freshHandlers(),
    });
    world = w;
    const first = await w.rotate();
    await w.settled(120_000);
    const measuredFrom = Date.now();
    const second = await w.rotate();
    // Put while the rotation's run polls the commands it sent.
    await new Promise((r) => setTimeout(r, 1_000));
    w.schedule();
    await w.settled(120_000);

    const waits = w.eventWaits().filter((e) => e.startedAt.getTime() >= measuredFrom);
    const schedule = w.bus
      .events()
      .filter((e) => e.putAt.getTime() >= measuredFrom)
      .find((e) => (e.event as { "detail-type"?: string })["detail-type"] === "Scheduled Event");
    const scheduleWait = waits.find((e) => e.eventId === String((schedule?.event as { id?: string })?.id));
    expect(scheduleWait).toBeDefined();
    expect(scheduleWait?.waitMs ?? Number.POSITIVE_INFINITY).toBeLessThan(COMMAND_MS - 1_000);

    const state = invariants(w);
    expect(state.tokenFor(second.versionId)?.valid).toBe(true);
    expect(state.tokenFor(first.versionId)?.valid).toBe(false);
    expect(state.managedValid.map((t) => t.id)).toEqual([state.tokenFor(second.versionId)?.id]);
    expect(await w.alerts()).toEqual([]);
  });

  it("a handover while replicas lag keeps the commands already sent in the primary region: the rollout completes without the schedule", async () => {
    // Seen in npm run bench (strategies, R = 3 s): the rotation's run sent us-east-1's command,
    // waited for the replicas and handed over to the label event; its continuation looked only at
    // the lagging regions' groups, nothing ever looked at us-east-1 again, and the old token stayed.
    const w = await startWorld({
      primaryRegion: "us-east-1",
      replicaRegions: ["us-west-2", "eu-west-1"],
      groups: [
        { region: "us-east-1", name: "ci-a", instances: 2, newInstancesProtectedFromScaleIn: true },
        { region: "us-west-2", name: "ci-b", instances: 2, newInstancesProtectedFromScaleIn: true },
        { region: "eu-west-1", name: "ci-c", instances: 2, newInstancesProtectedFromScaleIn: true },
      ],
      strategy: "in-place",
      replicaLagMs: 3_000,
      timeoutsMs: { reconcile: 120_000 },
      runCommand: { linuxStep: "mirror", invocationDelayMs: 300, commandLatencyMs: 500 },
      inPlace: { retrySeconds: 60, fallbackAfterSeconds: 120 },
      handlers: await freshHandlers(),
    });
    world = w;
    const first = await w.rotate();
    await w.settled(120_000);
    const second = await w.rotate();
    await w.settled(120_000);
    const continuations = w.eventWaits().filter((e) => e.continuation);
    expect(continuations.length).toBeGreaterThan(0);
    const state = invariants(w);
    expect(state.tokenFor(first.versionId)?.valid).toBe(false);
    expect(state.managedValid.map((t) => t.id)).toEqual([state.tokenFor(second.versionId)?.id]);
    expect(await w.alerts()).toEqual([]);
  });
});
