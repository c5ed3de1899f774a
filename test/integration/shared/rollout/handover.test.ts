import { afterEach, describe, expect, it } from "vitest";
import { startWorld, type World, type WorldGroup } from "../../../../sandbox/world/world";
import { HANDOVER_AFTER_MS } from "../../../../shared/rollout/handover";
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

/** An in-place world whose install commands run for COMMAND_MS: a run that polled them would hold the queue that long. */
async function slowCommandsWorld(groups: WorldGroup[]): Promise<World> {
  world = await startWorld({
    groups,
    strategy: "in-place",
    replicaLagMs: 100,
    timeoutsMs: { reconcile: 120_000 },
    runCommand: { linuxStep: "mirror", invocationDelayMs: 100, commandLatencyMs: COMMAND_MS },
    inPlace: { retrySeconds: 60, fallbackAfterSeconds: 120 },
    handlers: await freshHandlers(),
  });
  return world;
}

describe("handover: a run that only waits lets the triggers behind it through", { timeout: 240_000 }, () => {
  it("the schedule put during a slow in-place rollout waits less than the commands take", async () => {
    const w = await slowCommandsWorld([
      { region: "us-east-1", name: "ci", instances: 2, newInstancesProtectedFromScaleIn: true },
    ]);
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

  it("the promotion's label event, queued while the run observed and sent the commands, goes first at the run's first poll of them", async () => {
    // Seen in npm run bench (scale 20 × 1,000, in place): the run rotate-token's message started
    // observed every group and sent the commands, and its first poll of them took seconds more
    // before it looked for waiting triggers (HANDOVER_AFTER_MS after it began): the label event,
    // put 20 ms after that message, waited 3.6 s, and 13.4 s with the machine at its slowest.
    // Enough groups that the event is queued before the run's first poll (with one group the run
    // has sent its command before the event reaches the queue).
    const w = await slowCommandsWorld(
      Array.from({ length: 120 }, (_, i) => ({
        region: "us-east-1",
        name: `ci-${i + 1}`,
        instances: 1,
        newInstancesProtectedFromScaleIn: true,
      })),
    );
    const first = await w.rotate();
    await w.settled(120_000);
    const measuredFrom = Date.now();
    const second = await w.rotate();
    await w.settled(120_000);

    const label = w.bus
      .events()
      .filter((e) => e.putAt.getTime() >= measuredFrom)
      .find((e) => (e.event as { "detail-type"?: string })["detail-type"] === "Secret Label Updated");
    const labelWait = w.eventWaits().find((e) => e.eventId === String((label?.event as { id?: string })?.id));
    expect(labelWait).toBeDefined();
    // Before: at least HANDOVER_AFTER_MS, by construction (the run looked no sooner).
    expect(labelWait?.waitMs ?? Number.POSITIVE_INFINITY).toBeLessThan(HANDOVER_AFTER_MS);
    expect(w.eventWaits().filter((e) => e.continuation && e.startedAt.getTime() >= measuredFrom).length).toBe(
      1,
    );

    const state = invariants(w);
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
