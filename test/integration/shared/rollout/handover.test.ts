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
});
