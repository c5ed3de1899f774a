import { Agent, request } from "node:http";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type BuildkiteApi, startBuildkiteApi } from "../../../../../sandbox/fakes/buildkite/api";

const ORG = "acme";
const CLUSTER = "0190c2f4-7c1e-7f4a-9a51-3c6f2f1b8d10";
const API_TOKEN = "bkua_sandbox_test_token";
const TOKENS = `/v2/organizations/${ORG}/clusters/${CLUSTER}/tokens`;
const MINUTE = 60_000;

let api: BuildkiteApi;
/** The server's clock: 30 s into a minute, so the rate-limit window resets in 30 s. */
let clock: number;

beforeEach(async () => {
  clock = Date.parse("2030-01-01T12:00:30.000Z");
  api = await startBuildkiteApi({
    organization: ORG,
    clusterId: CLUSTER,
    apiToken: API_TOKEN,
    now: () => clock,
  });
});

afterEach(async () => {
  await api.close();
});

function rest(path: string, init: { method?: string; body?: unknown; token?: string | null } = {}) {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (init.token !== null) headers.authorization = `Bearer ${init.token ?? API_TOKEN}`;
  return fetch(`${api.url}${path}`, {
    method: init.method ?? "GET",
    headers,
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
}

function agent(path: string, value: string, body?: unknown) {
  return fetch(`${api.url}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { authorization: `Token ${value}`, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

async function create(body: unknown): Promise<Record<string, unknown>> {
  const res = await rest(TOKENS, { method: "POST", body });
  expect(res.status).toBe(201);
  return (await res.json()) as Record<string, unknown>;
}

/** rel → URL from an RFC 8288 Link header. */
function links(header: string | null): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (header ?? "").split(",")) {
    const m = /<([^>]+)>;\s*rel="([^"]+)"/.exec(part.trim());
    if (m?.[1] && m[2]) out[m[2]] = m[1];
  }
  return out;
}

describe("cluster tokens REST API", () => {
  it("creates, lists, gets and deletes a token", async () => {
    const expiresAt = new Date(clock + 60 * MINUTE).toISOString();
    const created = await create({ description: "rotation v1", expires_at: expiresAt });
    expect(created).toMatchObject({
      description: "rotation v1",
      allowed_ip_addresses: null,
      expires_at: expiresAt,
      created_at: new Date(clock).toISOString(),
      cluster_url: `${api.url}/v2/organizations/${ORG}/clusters/${CLUSTER}`,
      url: `${api.url}${TOKENS}/${String(created.id)}`,
      created_by: { name: expect.any(String), email: expect.any(String) },
    });
    expect(created.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.graphql_id).toEqual(expect.any(String));
    expect(created.token).toMatch(/^bkct_[0-9a-f]{40}$/);
    const id = String(created.id);

    const list = await rest(TOKENS);
    expect(list.status).toBe(200);
    expect(((await list.json()) as { id: string }[]).map((t) => t.id)).toEqual([id]);

    const got = await rest(`${TOKENS}/${id}`);
    expect(got.status).toBe(200);
    const { token: _value, ...withoutValue } = created;
    expect(await got.json()).toEqual(withoutValue);

    const deleted = await rest(`${TOKENS}/${id}`, { method: "DELETE" });
    expect(deleted.status).toBe(204);
    expect(await deleted.text()).toBe("");

    expect((await rest(`${TOKENS}/${id}`)).status).toBe(404);
    const again = await rest(`${TOKENS}/${id}`, { method: "DELETE" });
    expect(again.status).toBe(404);
    expect(await again.json()).toEqual({ message: "Not Found" });
    expect(await (await rest(TOKENS)).json()).toEqual([]);

    const [stored] = api.tokens();
    expect(stored).toMatchObject({ id, value: created.token, valid: false, revokedAt: new Date(clock) });
    expect(api.validTokens()).toEqual([]);
  });

  it("returns the token value only in the create response, and never logs it", async () => {
    const out = vi.spyOn(process.stdout, "write");
    const err = vi.spyOn(process.stderr, "write");
    try {
      const created = await create({ description: "secret holder" });
      const value = String(created.token);
      const bodies = [
        await (await rest(TOKENS)).text(),
        await (await rest(`${TOKENS}/${String(created.id)}`)).text(),
        await (await agent("/v3/register", value, { name: "agent-1" })).text(),
        await (await agent("/v3/metrics", value)).text(),
      ];
      for (const body of bodies) expect(body).not.toContain(value);
      expect(JSON.stringify(api.requests())).not.toContain(value);
      expect(JSON.stringify(api.registrations())).not.toContain(value);
      const written = [...out.mock.calls, ...err.mock.calls].map((call) => String(call[0])).join("\n");
      expect(written).not.toContain(value);
    } finally {
      out.mockRestore();
      err.mockRestore();
    }
  });

  it("paginates more than 100 tokens with absolute Link URLs", async () => {
    for (let i = 0; i < 205; i++) api.addToken({ description: `seed ${i}` });

    const pages: { ids: string[]; rels: Record<string, string> }[] = [];
    let next: string | undefined = `${api.url}${TOKENS}?per_page=100`;
    while (next) {
      const res = await fetch(next, { headers: { authorization: `Bearer ${API_TOKEN}` } });
      expect(res.status).toBe(200);
      const rels = links(res.headers.get("link"));
      pages.push({ ids: ((await res.json()) as { id: string }[]).map((t) => t.id), rels });
      next = rels.next;
    }

    expect(pages.map((p) => p.ids.length)).toEqual([100, 100, 5]);
    const ids = pages.flatMap((p) => p.ids);
    expect(new Set(ids).size).toBe(205);
    expect(ids).toEqual(api.tokens().map((t) => t.id)); // creation order

    const [first, second, last] = pages.map((p) => p.rels);
    const page = (n: number) => `${api.url}${TOKENS}?page=${n}&per_page=100`;
    expect(first).toEqual({ next: page(2), last: page(3) });
    expect(second).toEqual({ next: page(3), last: page(3), first: page(1), prev: page(1) });
    expect(last).toEqual({ first: page(1), prev: page(2) });
  });

  it("defaults per_page to 30 and clamps it to 100", async () => {
    for (let i = 0; i < 120; i++) api.addToken({ description: `seed ${i}` });
    expect(((await (await rest(TOKENS)).json()) as unknown[]).length).toBe(30);
    const clamped = await rest(`${TOKENS}?per_page=500`);
    expect(((await clamped.json()) as unknown[]).length).toBe(100);
    expect(links(clamped.headers.get("link")).next).toBe(`${api.url}${TOKENS}?page=2&per_page=100`);
  });

  it("rejects a missing or blank description with 422", async () => {
    for (const body of [{}, { description: "" }, { description: "   " }, { description: 7 }]) {
      const res = await rest(TOKENS, { method: "POST", body });
      expect(res.status).toBe(422);
      expect(await res.json()).toMatchObject({ message: "Validation failed: Description can't be blank" });
    }
    expect(api.tokens()).toEqual([]);
  });

  it("requires expires_at to be ISO 8601 and at least 10 minutes ahead", async () => {
    for (const expires_at of [
      new Date(clock + 9 * MINUTE).toISOString(),
      new Date(clock - MINUTE).toISOString(),
      "next tuesday",
      12345,
    ]) {
      const res = await rest(TOKENS, { method: "POST", body: { description: "x", expires_at } });
      expect(res.status).toBe(422);
      expect(((await res.json()) as { message: string }).message).toMatch(/^Validation failed: Expires at/);
    }
    expect(api.tokens()).toEqual([]);

    const exactly = new Date(clock + 10 * MINUTE).toISOString();
    expect((await create({ description: "x", expires_at: exactly })).expires_at).toBe(exactly);
    expect((await create({ description: "no expiry", expires_at: null })).expires_at).toBeNull();
  });

  it("answers 404 for an unknown organization or cluster", async () => {
    for (const path of [
      `/v2/organizations/other/clusters/${CLUSTER}/tokens`,
      `/v2/organizations/${ORG}/clusters/nope/tokens`,
    ]) {
      const res = await rest(path);
      expect(res.status).toBe(404);
      expect(await res.json()).toEqual({ message: "No cluster found" });
    }
    expect((await rest(`${TOKENS}/not-a-token`)).status).toBe(404);
  });
});

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

    api.setScopes(["read_clusters"]);
    expect(await (await rest("/v2/access-token")).json()).toMatchObject({ scopes: ["read_clusters"] });
    expect((await rest(TOKENS)).status).toBe(200);
    const { id } = api.addToken({ description: "seed" });
    for (const [method, path] of [
      ["POST", TOKENS],
      ["DELETE", `${TOKENS}/${id}`],
    ] as const) {
      const res = await rest(path, { method, body: { description: "x" } });
      expect(res.status).toBe(403);
      expect(((await res.json()) as { message: string }).message).toContain("write_clusters");
    }

    api.setScopes([]);
    expect((await rest(TOKENS)).status).toBe(403);
    expect((await rest(`${TOKENS}/${id}`)).status).toBe(403);
    expect(api.validTokens().map((t) => t.id)).toEqual([id]);
  });

  it("takes its initial scopes from the options", async () => {
    const other = await startBuildkiteApi({
      organization: ORG,
      clusterId: CLUSTER,
      apiToken: API_TOKEN,
      apiTokenScopes: ["read_clusters"],
    });
    try {
      const res = await fetch(`${other.url}/v2/access-token`, {
        headers: { authorization: `Bearer ${API_TOKEN}` },
      });
      expect(await res.json()).toMatchObject({ scopes: ["read_clusters"] });
    } finally {
      await other.close();
    }
  });
});

describe("agent API", () => {
  const metricsBody = {
    agents: { idle: 0, busy: 0, total: 0, queues: {} },
    jobs: { scheduled: 0, running: 0, waiting: 0, total: 0, queues: {} },
    organization: { slug: ORG },
  };

  it("answers /v3/metrics for a valid token only", async () => {
    const { value } = api.addToken({ description: "seed" });
    const ok = await agent("/v3/metrics", value);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual(metricsBody);

    for (const bad of ["bkct_unknown", ""]) {
      const res = await agent("/v3/metrics", bad);
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual({ message: "Invalid token" });
    }
    // The REST API token is not an agent token.
    expect((await agent("/v3/metrics", API_TOKEN)).status).toBe(401);
  });

  it("rejects a token revoked in the UI or through the API", async () => {
    const ui = api.addToken({ description: "revoked by a human" });
    api.revokeToken(ui.id);
    expect((await agent("/v3/metrics", ui.value)).status).toBe(401);

    const created = await create({ description: "revoked by the API" });
    expect((await agent("/v3/metrics", String(created.token))).status).toBe(200);
    expect((await rest(`${TOKENS}/${String(created.id)}`, { method: "DELETE" })).status).toBe(204);
    expect((await agent("/v3/metrics", String(created.token))).status).toBe(401);
  });

  it("rejects a token once the clock passes its expiry", async () => {
    const created = await create({
      description: "short-lived",
      expires_at: new Date(clock + 15 * MINUTE).toISOString(),
    });
    const value = String(created.token);
    expect((await agent("/v3/metrics", value)).status).toBe(200);

    clock += 15 * MINUTE; // expiry is exclusive: at expires_at the token is dead
    expect((await agent("/v3/metrics", value)).status).toBe(401);
    expect(api.tokens()[0]).toMatchObject({ valid: false, revokedAt: null });
    expect(api.validTokens()).toEqual([]);
  });

  it("registers agents and records every attempt", async () => {
    const good = api.addToken({ description: "current" });
    const revoked = api.addToken({ description: "old" });
    api.revokeToken(revoked.id);

    const ok = await agent("/v3/register", good.value, {
      name: "agent-1",
      hostname: "h1",
      meta_data: ["queue=default"],
    });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      name: "agent-1",
      access_token: expect.any(String),
      endpoint: `${api.url}/v3`,
    });

    clock += 1000;
    expect((await agent("/v3/register", revoked.value, { name: "agent-2" })).status).toBe(401);
    expect((await agent("/v3/register", "bkct_unknown", { name: "agent-3" })).status).toBe(401);
    expect((await agent("/v3/register", good.value, {})).status).toBe(422);

    expect(api.registrations()).toEqual([
      {
        at: new Date(clock - 1000),
        name: "agent-1",
        tokenId: good.id,
        ok: true,
        status: 200,
        metaData: ["queue=default"],
      },
      { at: new Date(clock), name: "agent-2", tokenId: revoked.id, ok: false, status: 401, metaData: [] },
      { at: new Date(clock), name: "agent-3", tokenId: null, ok: false, status: 401, metaData: [] },
      { at: new Date(clock), name: "", tokenId: good.id, ok: false, status: 422, metaData: [] },
    ]);
  });

  it("sends no rate-limit headers (those belong to the REST API)", async () => {
    const res = await agent("/v3/metrics", "bkct_unknown");
    expect(res.headers.get("ratelimit-remaining")).toBeNull();
  });
});

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
    clock += 10_000;
    const second = await rest(TOKENS, { token: "bkua_wrong" }); // errors carry the headers too
    expect(second.status).toBe(401);
    expect(second.headers.get("ratelimit-remaining")).toBe("198");
    expect(second.headers.get("ratelimit-user-remaining")).toBe("48");
    expect(second.headers.get("ratelimit-reset")).toBe("20");

    clock += 20_000; // a new minute: a fresh budget
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
    api.setRateLimitEnforcement(true);
    for (let i = 0; i < 50; i++) expect((await rest("/v2/access-token")).status).toBe(200);
    const limited = await rest("/v2/access-token");
    expect(limited.status).toBe(429);
    expect(((await limited.json()) as { message: string }).message).toMatch(/rate limit/);
    expect(limited.headers.get("ratelimit-user-remaining")).toBe("0");
    expect(limited.headers.get("ratelimit-remaining")).toBe("0");
    expect(limited.headers.get("ratelimit-user-reset")).toBe("30");

    clock += 30_000;
    expect((await rest("/v2/access-token")).status).toBe(200);
  });
});

describe("knobs", () => {
  it("failNext answers the given status, then recovers", async () => {
    api.failNext(2, 503);
    api.failNext(1); // queued after: default 500
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await rest("/v2/access-token");
      statuses.push(res.status);
      if (res.status !== 200) expect(await res.json()).toEqual({ message: expect.any(String) });
    }
    expect(statuses).toEqual([503, 503, 500, 200]);

    api.failNext(1, 502);
    expect((await agent("/v3/metrics", "bkct_x")).status).toBe(502); // the agent API too
  });

  it("rateLimitNext answers 429 with the given reset and no Retry-After", async () => {
    api.rateLimitNext(1, 17);
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
    api.dropNext(1);
    await expect(rest("/v2/access-token")).rejects.toThrow(TypeError);
    expect((await rest("/v2/access-token")).status).toBe(200);
    expect(api.requests().map((r) => r.status)).toEqual([0, 200]);
  });

  it("setLatency delays responses", async () => {
    api.setLatency(150);
    const started = performance.now();
    expect((await rest("/v2/access-token")).status).toBe(200);
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);
  });

  it("setFlaky is deterministic for a seed", async () => {
    const run = async (seed: number) => {
      api.setFlaky({ probability: 0.5, seed });
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

    api.setFlaky(undefined);
    for (let i = 0; i < 10; i++) expect((await rest("/v2/access-token")).status).toBe(200);
  });

  it("failNextCreateAfterCommit creates the token but answers 502", async () => {
    api.failNextCreateAfterCommit(1);
    const lost = await rest(TOKENS, { method: "POST", body: { description: "lost response" } });
    expect(lost.status).toBe(502);
    expect(await lost.text()).not.toContain("bkct_");
    expect(api.validTokens()).toEqual([
      expect.objectContaining({ description: "lost response", valid: true }),
    ]);
    const listed = (await (await rest(TOKENS)).json()) as { description: string }[];
    expect(listed.map((t) => t.description)).toEqual(["lost response"]);

    expect((await create({ description: "next one" })).token).toEqual(expect.any(String));
  });

  it("reset clears knobs but keeps tokens", async () => {
    const { id } = api.addToken({ description: "kept" });
    api.failNext(5);
    api.rateLimitNext(5, 9);
    api.dropNext(5);
    api.setFlaky({ probability: 1, seed: 1 });
    api.setScopes([]);
    api.setLatency(10_000);
    api.failNextCreateAfterCommit(1);
    api.reset();
    expect((await rest(`${TOKENS}/${id}`)).status).toBe(200);
    expect((await rest(TOKENS, { method: "POST", body: { description: "after reset" } })).status).toBe(201);
    expect(api.tokens()).toHaveLength(2);
  });

  it("records every request without headers or query strings", async () => {
    await rest(`${TOKENS}?per_page=5`);
    clock += 1;
    await agent("/v3/metrics", "bkct_x");
    await rest("/v2/nowhere");
    expect(api.requests()).toEqual([
      { method: "GET", path: TOKENS, status: 200, at: new Date(clock - 1) },
      { method: "GET", path: "/v3/metrics", status: 401, at: new Date(clock) },
      { method: "GET", path: "/v2/nowhere", status: 404, at: new Date(clock) },
    ]);
  });
});

describe("close", () => {
  it("does not hang on an idle keep-alive connection", async () => {
    const keepAlive = new Agent({ keepAlive: true });
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = request(`${api.url}/v2/access-token`, {
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
      await api.close();
      expect(performance.now() - started).toBeLessThan(1000);
    } finally {
      keepAlive.destroy();
    }
  });

  it("does not hang with a request in flight, and is idempotent", async () => {
    api.setLatency(30_000);
    const pending = rest("/v2/access-token");
    await vi.waitFor(() => expect(api.requests()).toHaveLength(1));
    const started = performance.now();
    await api.close();
    await api.close();
    expect(performance.now() - started).toBeLessThan(1000);
    await expect(pending).rejects.toThrow(TypeError);
  });
});
