import { Agent, request } from "node:http";
import { describe, expect, it, vi } from "vitest";
import { API_TOKEN, TOKENS, useBuildkiteApi } from "../../../../support/buildkite-api";

/** The HTTP side (server.ts): REST authentication, the request log, closing. */
const bk = useBuildkiteApi();
const { rest, agent } = bk;

describe("REST authentication and scopes", () => {
  it("answers 401 for a missing or wrong API token", async () => {
    for (const token of [null, "bkua_wrong"]) {
      const res = await rest(TOKENS, { token });
      expect(res.status).toBe(401);
      expect(((await res.json()) as { message: string }).message).toMatch(/^Authentication required/);
    }
    expect((await rest("/v2/access-token", { token: null })).status).toBe(401);
  });

  it("reports the token's scopes and answers 403 when one is missing", async () => {
    const info = await rest("/v2/access-token");
    expect(info.status).toBe(200);
    expect(await info.json()).toEqual({
      uuid: expect.any(String),
      scopes: ["read_clusters", "write_clusters"],
    });

    bk.api.setScopes(["read_clusters"]);
    expect(await (await rest("/v2/access-token")).json()).toMatchObject({ scopes: ["read_clusters"] });
    expect((await rest(TOKENS)).status).toBe(200);
    const { id } = bk.api.addToken({ description: "seed" });
    for (const [method, path] of [
      ["POST", TOKENS],
      ["DELETE", `${TOKENS}/${id}`],
    ] as const) {
      const res = await rest(path, { method, body: { description: "x" } });
      expect(res.status).toBe(403);
      expect(((await res.json()) as { message: string }).message).toContain("write_clusters");
    }

    bk.api.setScopes([]);
    expect((await rest(TOKENS)).status).toBe(403);
    expect((await rest(`${TOKENS}/${id}`)).status).toBe(403);
    expect(bk.api.validTokens().map((t) => t.id)).toEqual([id]);
  });
});

describe("request log", () => {
  it("records every request without headers or query strings", async () => {
    await rest(`${TOKENS}?per_page=5`);
    bk.clock += 1;
    await agent("/v3/metrics", "bkct_x");
    await rest("/v2/nowhere");
    expect(bk.api.requests()).toEqual([
      { method: "GET", path: TOKENS, status: 200, at: new Date(bk.clock - 1) },
      { method: "GET", path: "/v3/metrics", status: 401, at: new Date(bk.clock) },
      { method: "GET", path: "/v2/nowhere", status: 404, at: new Date(bk.clock) },
    ]);
  });
});

describe("close", () => {
  it("does not hang on an idle keep-alive connection", async () => {
    const keepAlive = new Agent({ keepAlive: true });
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = request(`${bk.api.url}/v2/access-token`, {
          agent: keepAlive,
          headers: { authorization: `Bearer ${API_TOKEN}` },
        });
        req.on("response", (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
        });
        req.on("error", reject);
        req.end();
      });
      expect(status).toBe(200);
      expect(Object.keys(keepAlive.freeSockets)).toHaveLength(1); // the socket is idle, still open

      const started = performance.now();
      await bk.api.close();
      expect(performance.now() - started).toBeLessThan(1000);
    } finally {
      keepAlive.destroy();
    }
  });

  it("does not hang with a request in flight, and is idempotent", async () => {
    bk.api.setLatency(30_000);
    const pending = rest("/v2/access-token");
    await vi.waitFor(() => expect(bk.api.requests()).toHaveLength(1));
    const started = performance.now();
    await bk.api.close();
    await bk.api.close();
    expect(performance.now() - started).toBeLessThan(1000);
    await expect(pending).rejects.toThrow(TypeError);
  });
});
