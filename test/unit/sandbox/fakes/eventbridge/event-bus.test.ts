import { describe, expect, it } from "vitest";
import { createEventBus } from "../../../../../sandbox/fakes/eventbridge/event-bus";
import { reconcileRulePatterns, SCHEDULE_PATTERN } from "../../../../../sandbox/fakes/eventbridge/rules";

const SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:agent-token-AbCdEf";
const { refreshes } = reconcileRulePatterns(SECRET);
const refresh = (kind: string, group: string) => ({
  id: `${kind}-${group}`,
  source: "aws.autoscaling",
  "detail-type": `EC2 Auto Scaling Instance Refresh ${kind}`,
  detail: { AutoScalingGroupName: group },
});

describe("the sandbox's event bus", () => {
  it("delivers only what a rule matches; the rest is recorded as unmatched", async () => {
    const delivered: unknown[] = [];
    const bus = createEventBus({
      rules: [refreshes, SCHEDULE_PATTERN],
      deliver: async (event) => {
        delivered.push(event);
      },
    });
    bus.put(refresh("Started", "ci-1"));
    bus.put(refresh("Succeeded", "ci-1"));
    await bus.idle(1_000);
    expect(delivered).toEqual([refresh("Succeeded", "ci-1")]);
    expect(bus.events().map((e) => [e.unmatched === true, e.deliveredAt !== undefined])).toEqual([
      [true, false],
      [false, true],
    ]);
  });

  it("batches what was put meanwhile, in put order, at most ten at a time; each failure lands on its event", async () => {
    const batches: string[][] = [];
    const bus = createEventBus({
      deliver: async () => {
        throw new Error("single delivery not expected");
      },
      deliverBatch: async (events) => {
        const ids = events.map((e) => (e as { id: string }).id);
        batches.push(ids);
        return ids.map((id) => (id === "Succeeded-ci-7" ? "InternalError: boom" : undefined));
      },
    });
    for (let i = 1; i <= 23; i++) bus.put(refresh("Succeeded", `ci-${i}`));
    await bus.idle(1_000);
    expect(batches.map((b) => b.length)).toEqual([10, 10, 3]);
    expect(batches.flat()).toEqual(Array.from({ length: 23 }, (_, i) => `Succeeded-ci-${i + 1}`));
    const failed = bus.events().filter((e) => e.error !== undefined);
    expect(failed.map((e) => [(e.event as { id: string }).id, e.error])).toEqual([
      ["Succeeded-ci-7", "InternalError: boom"],
    ]);
    expect(bus.events().filter((e) => e.deliveredAt !== undefined)).toHaveLength(22);
  });

  it("a failed batch marks each of its events; a single event goes through deliver", async () => {
    const singles: unknown[] = [];
    const bus = createEventBus({
      deliver: async (event) => {
        singles.push(event);
      },
      deliverBatch: async () => {
        throw new Error("queue gone");
      },
    });
    bus.put(refresh("Failed", "ci-1"));
    await bus.idle(1_000);
    expect(singles).toHaveLength(1);
    bus.put(refresh("Failed", "ci-2"));
    bus.put(refresh("Failed", "ci-3"));
    await bus.idle(1_000);
    expect(bus.events().map((e) => e.error)).toEqual([undefined, "Error: queue gone", "Error: queue gone"]);
  });

  it("with maxInFlight, several batches are in flight at once (no order is guaranteed); each event is delivered once", async () => {
    let inFlight = 0;
    let most = 0;
    const delivered: string[] = [];
    const bus = createEventBus({
      deliver: async () => {
        throw new Error("single delivery not expected");
      },
      deliverBatch: async (events) => {
        inFlight++;
        most = Math.max(most, inFlight);
        await new Promise((resolve) => setTimeout(resolve, 5));
        delivered.push(...events.map((e) => (e as { id: string }).id));
        inFlight--;
        return events.map(() => undefined);
      },
      maxInFlight: 3,
    });
    for (let i = 1; i <= 45; i++) bus.put(refresh("Succeeded", `ci-${i}`));
    await bus.idle(1_000);
    expect(most).toBe(3);
    expect([...delivered].sort()).toEqual(
      Array.from({ length: 45 }, (_, i) => `Succeeded-ci-${i + 1}`).sort(),
    );
    expect(bus.events().every((e) => e.deliveredAt !== undefined)).toBe(true);
  });

  it("drops what is put after close", async () => {
    const bus = createEventBus({ deliver: async () => undefined });
    bus.close();
    bus.put(refresh("Succeeded", "ci-1"));
    await bus.idle(1_000);
    expect(bus.events()[0]?.error).toBe("dropped: event bus closed");
  });
});
