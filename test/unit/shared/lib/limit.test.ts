import { describe, expect, it } from "vitest";
import { perKeyLimit } from "../../../../shared/lib/limit";

function deferred() {
  let resolve: () => void = () => {};
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe("perKeyLimit", () => {
  it("keeps at most n calls in flight per key, in call order, and other keys apart", async () => {
    const limit = perKeyLimit(2);
    const inFlight = new Map<string, number>();
    const peak = new Map<string, number>();
    const order: string[] = [];
    const gates = Array.from({ length: 5 }, deferred);
    const call = (key: string, i: number) =>
      limit(key, async () => {
        inFlight.set(key, (inFlight.get(key) ?? 0) + 1);
        peak.set(key, Math.max(peak.get(key) ?? 0, inFlight.get(key) ?? 0));
        order.push(`${key}${i}`);
        await gates[i]?.promise;
        inFlight.set(key, (inFlight.get(key) ?? 0) - 1);
        return i;
      });
    const a = [0, 1, 2, 3].map((i) => call("a", i));
    const b = call("b", 4);
    await Promise.resolve();
    expect(order).toEqual(["a0", "a1", "b4"]);
    for (const g of gates) g.resolve();
    expect(await Promise.all([...a, b])).toEqual([0, 1, 2, 3, 4]);
    expect(order).toEqual(["a0", "a1", "b4", "a2", "a3"]);
    expect(peak.get("a")).toBe(2);
  });

  it("frees the slot when a call fails", async () => {
    const limit = perKeyLimit(1);
    await expect(limit("a", () => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    expect(await limit("a", async () => "next")).toBe("next");
  });

  it("refuses a limit that is not a whole number ≥ 1", () => {
    expect(() => perKeyLimit(0)).toThrow(/whole number/);
  });
});
