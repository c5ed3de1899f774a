import { describe, expect, it } from "vitest";
import { coresBusy, startCpuSampler } from "../../../../scripts/bench/cpu-sampler";

/** Burns this thread's CPU until the process has used `ms` more of it (a CPU amount, not a wall time). */
function burn(ms: number) {
  const start = process.cpuUsage();
  let x = 0;
  for (;;) {
    for (let i = 0; i < 100_000; i++) x += i;
    const used = process.cpuUsage(start);
    if ((used.user + used.system) / 1000 >= ms) return x;
  }
}

describe("startCpuSampler", () => {
  it("reads a process's CPU from /proc as this process counts its own", async () => {
    // This process stands in for moto: both figures then count the same CPU.
    const sampler = startCpuSampler(process.pid);
    const from = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 300));
    burn(400);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const to = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 300));
    sampler.stop();
    const busy = sampler.busyBetween(from, to);
    expect(busy.node).toBeGreaterThan(0);
    // /proc counts in ticks of 10 ms; the window's ends are the nearest samples, taken 250 ms apart.
    expect(Math.abs(busy.moto - busy.node)).toBeLessThan(0.15 * busy.node + 0.05);
    expect(busy.total).toBeCloseTo(busy.node + busy.moto, 6);
    expect(busy.cores).toBeGreaterThanOrEqual(1);
  });

  it("says NaN for moto, and so for the total, when it has no process to read", async () => {
    const sampler = startCpuSampler(undefined);
    const from = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 300));
    sampler.stop();
    const busy = sampler.busyBetween(from, Date.now());
    expect(busy.moto).toBeNaN();
    expect(busy.total).toBeNaN();
    expect(busy.node).toBeGreaterThanOrEqual(0);
  });

  it("prints the cores busy, and a question mark for what it could not read", () => {
    expect(coresBusy({ node: 0.9, moto: 0.6, total: 1.5, cores: 2 })).toBe("1.50/2 (node 0.90, moto 0.60)");
    expect(coresBusy({ node: 0.9, moto: Number.NaN, total: Number.NaN, cores: 2 })).toBe("0.90+?/2");
  });
});
