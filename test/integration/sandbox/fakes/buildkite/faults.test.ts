import { describe, expect, it } from "vitest";
import { TOKENS, useBuildkiteApi } from "../../../../support/buildkite-api";

/** Injected faults and rate limits (faults.ts), as a client sees them over HTTP. */
const bk = useBuildkiteApi();
const { rest, agent, create } = bk;

describe("rate limits", () => {
  it("counts REST requests per minute window in the headers", async () => {
    const first = await rest("/v2/access-token");
    expect(Object.fromEntries([...first.headers].filter(([name]) => name.startsWith("ratelimit")))).toEqual({
      "ratelimit-limit": "200",
      "ratelimit-remaining": "199",
      "ratelimit-reset": "30",
      "ratelimit-user-limit": "50",
      "ratelimit-user-remaining": "49",
      "ratelimit-user-reset": "30",
    });
    bk.clock += 10_000;
    const second = await rest(TOKENS, { token: "bkua_wrong" }); // errors carry the headers too
    expect(second.status).toBe(401);
    expect(second.headers.get("ratelimit-remaining")).toBe("198");
    expect(second.headers.get("ratelimit-user-remaining")).toBe("48");
    expect(second.headers.get("ratelimit-reset")).toBe("20");

    bk.clock += 20_000; // a new minute: a fresh budget
    const third = await rest("/v2/access-token");
    expect(third.headers.get("ratelimit-remaining")).toBe("199");
    expect(third.headers.get("ratelimit-reset")).toBe("60");
  });

  it("does not throttle by default", async () => {
    let last: Response | undefined;
    for (let i = 0; i < 60; i++) last = await rest("/v2/access-token");
    expect(last?.status).toBe(200);
    expect(last?.headers.get("ratelimit-user-remaining")).toBe("0");
    expect(last?.headers.get("ratelimit-remaining")).toBe("140");
  });

  it("enforces the user budget of 50 per minute when asked to", async () => {
    bk.api.setRateLimitEnforcement(true);
    for (let i = 0; i < 50; i++) expect((await rest("/v2/access-token")).status).toBe(200);
    const limited = await rest("/v2/access-token");
    expect(limited.status).toBe(429);
    expect(((await limited.json()) as { message: string }).message).toMatch(/rate limit/);
    expect(limited.headers.get("ratelimit-user-remaining")).toBe("0");
    expect(limited.headers.get("ratelimit-remaining")).toBe("0");
    expect(limited.headers.get("ratelimit-user-reset")).toBe("30");

    bk.clock += 30_000;
    expect((await rest("/v2/access-token")).status).toBe(200);
  });
});

describe("knobs", () => {
  it("failNext answers the given status, then recovers", async () => {
    bk.api.failNext(2, 503);
    bk.api.failNext(1); // queued after: default 500
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await rest("/v2/access-token");
      statuses.push(res.status);
      if (res.status !== 200) expect(await res.json()).toEqual({ message: expect.any(String) });
    }
    expect(statuses).toEqual([503, 503, 500, 200]);

    bk.api.failNext(1, 502);
    expect((await agent("/v3/metrics", "bkct_x")).status).toBe(502); // the agent API too
  });

  it("rateLimitNext answers 429 with the given reset and no Retry-After", async () => {
    bk.api.rateLimitNext(1, 17);
    const res = await rest("/v2/access-token");
    expect(res.status).toBe(429);
    expect(res.headers.get("ratelimit-remaining")).toBe("0");
    expect(res.headers.get("ratelimit-reset")).toBe("17");
    expect(res.headers.get("ratelimit-user-remaining")).toBe("0");
    expect(res.headers.get("ratelimit-user-reset")).toBe("17");
    expect(res.headers.get("ratelimit-limit")).toBe("200");
    expect(res.headers.get("retry-after")).toBeNull();
    expect((await rest("/v2/access-token")).status).toBe(200);
  });

  it("dropNext makes fetch fail with a network error", async () => {
    bk.api.dropNext(1);
    await expect(rest("/v2/access-token")).rejects.toThrow(TypeError);
    expect((await rest("/v2/access-token")).status).toBe(200);
    expect(bk.api.requests().map((r) => r.status)).toEqual([0, 200]);
  });

  it("setLatency delays responses", async () => {
    bk.api.setLatency(150);
    const started = performance.now();
    expect((await rest("/v2/access-token")).status).toBe(200);
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);
  });

  it("setFlaky is deterministic for a seed", async () => {
    const run = async (seed: number) => {
      bk.api.setFlaky({ probability: 0.5, seed });
      const statuses: number[] = [];
      for (let i = 0; i < 40; i++) {
        const res = await rest("/v2/access-token");
        statuses.push(res.status);
        if (res.status === 429) expect(res.headers.get("ratelimit-reset")).toBe("1");
      }
      return statuses;
    };
    const a = await run(42);
    const b = await run(42);
    expect(b).toEqual(a);
    expect(new Set(a)).toEqual(new Set([200, 429, 502]));
    expect(await run(7)).not.toEqual(a);

    bk.api.setFlaky(undefined);
    for (let i = 0; i < 10; i++) expect((await rest("/v2/access-token")).status).toBe(200);
  });

  it("failNextCreateAfterCommit creates the token but answers 502", async () => {
    bk.api.failNextCreateAfterCommit(1);
    const lost = await rest(TOKENS, { method: "POST", body: { description: "lost response" } });
    expect(lost.status).toBe(502);
    expect(await lost.text()).not.toContain("bkct_");
    expect(bk.api.validTokens()).toEqual([
      expect.objectContaining({ description: "lost response", valid: true }),
    ]);
    const listed = (await (await rest(TOKENS)).json()) as { description: string }[];
    expect(listed.map((t) => t.description)).toEqual(["lost response"]);

    expect((await create({ description: "next one" })).token).toEqual(expect.any(String));
  });
});
