import { describe, expect, it } from "vitest";
import {
  continuationBody,
  dueToLook,
  HANDOVER_AFTER_MS,
  HANDOVER_WHILE_STARTING_AFTER_MS,
  newContinuation,
} from "../../../../shared/rollout/handover";

const at = (ms: number) => new Date(Date.UTC(2026, 11, 2, 12) + ms);

describe("handover: when a run looks for waiting triggers", () => {
  it.each([
    [HANDOVER_AFTER_MS - 1, undefined, false],
    [HANDOVER_AFTER_MS, undefined, true],
    // Carrying on with one look's starts, the run holds the queue longer before it looks.
    [HANDOVER_AFTER_MS, HANDOVER_WHILE_STARTING_AFTER_MS, false],
    [HANDOVER_WHILE_STARTING_AFTER_MS - 1, HANDOVER_WHILE_STARTING_AFTER_MS, false],
    [HANDOVER_WHILE_STARTING_AFTER_MS, HANDOVER_WHILE_STARTING_AFTER_MS, true],
  ])("held %i ms (look after %s ms): %s", (heldMs, afterMs, due) => {
    expect(dueToLook(at(0), at(heldMs), afterMs)).toBe(due);
  });

  it("holds the queue well inside the 10 s an event may wait, leaving time for the triggers ahead of it", () => {
    expect(HANDOVER_AFTER_MS).toBeLessThan(HANDOVER_WHILE_STARTING_AFTER_MS);
    expect(HANDOVER_AFTER_MS).toBeLessThanOrEqual(5_000);
    expect(HANDOVER_WHILE_STARTING_AFTER_MS).toBeLessThanOrEqual(7_000);
  });

  it("a continuation's message names it, its version and its time", () => {
    const c = newContinuation("v2", at(0));
    expect(continuationBody(c)).toEqual({
      source: expect.any(String),
      continuation: c.id,
      versionId: "v2",
      time: at(0).toISOString(),
    });
    expect(continuationBody(newContinuation(undefined, at(0)))).not.toHaveProperty("versionId");
  });
});
