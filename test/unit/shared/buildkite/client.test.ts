// The MockAgent becomes the global dispatcher, which Node's built-in fetch (undici inside Node)
// consults: the client under test uses its default, the global fetch it really uses in Lambda.
import { type Dispatcher, getGlobalDispatcher, MockAgent, setGlobalDispatcher } from "undici";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BuildkiteClient, nextLink } from "../../../../shared/buildkite/client";
import { BuildkiteApiError, DeadlineError } from "../../../../shared/lib/errors";

const API = "https://api.buildkite.test";
const AGENT = "https://agent.buildkite.test";
const TOKENS = "/v2/organizations/acme/clusters/c1/tokens";
const VALUE = "bkct_0123456789abcdef0123456789abcdef01234567";

let agent: MockAgent;
let previousDispatcher: Dispatcher;
let sleeps: number[];

function client(extra: Partial<ConstructorParameters<typeof BuildkiteClient>[0]> = {}) {
  return new BuildkiteClient({
    apiUrl: API,
    agentApiUrl: AGENT,
    organization: "acme",
    clusterId: "c1",
    apiToken: async () => "api-token-value-1234567890",
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    ...extra,
  });
}

const item = (id: string, description = "d") => ({ id, description, created_at: "2026-01-01T00:00:00Z" });

beforeEach(() => {
  agent = new MockAgent();
  agent.disableNetConnect();
  previousDispatcher = getGlobalDispatcher();
  setGlobalDispatcher(agent);
  sleeps = [];
});
afterEach(async () => {
  setGlobalDispatcher(previousDispatcher);
  await agent.close();
});

describe("BuildkiteClient", () => {
  it("creates a token with description and expiry and returns its value once", async () => {
    let sent: unknown;
    agent
      .get(API)
      .intercept({
        path: TOKENS,
        method: "POST",
        headers: { authorization: "Bearer api-token-value-1234567890" },
        body: (b) => {
          sent = JSON.parse(b);
          return true;
        },
      })
      .reply(201, { ...item("t1", "desc"), expires_at: "2026-02-01T00:00:00.000Z", token: VALUE });
    const created = await client().createToken({
      description: "desc",
      expiresAt: new Date("2026-02-01T00:00:00Z"),
    });
    expect(sent).toEqual({ description: "desc", expires_at: "2026-02-01T00:00:00.000Z" });
    expect(created).toMatchObject({ id: "t1", token: VALUE, expiresAt: "2026-02-01T00:00:00.000Z" });
  });

  it("never retries a create that failed with 5xx or a network error", async () => {
    agent.get(API).intercept({ path: TOKENS, method: "POST" }).reply(502, "bad gateway");
    await expect(client().createToken({ description: "d" })).rejects.toMatchObject({ status: 502 });
    agent.get(API).intercept({ path: TOKENS, method: "POST" }).replyWithError(new Error("socket hang up"));
    await expect(client().createToken({ description: "d" })).rejects.toMatchObject({ status: 0 });
    expect(sleeps).toEqual([]);
    agent.assertNoPendingInterceptors();
  });

  it("retries a create refused with 429, waiting for RateLimit-Reset", async () => {
    const pool = agent.get(API);
    pool
      .intercept({ path: TOKENS, method: "POST" })
      .reply(429, "{}", { headers: { "ratelimit-reset": "3", "ratelimit-remaining": "0" } });
    pool.intercept({ path: TOKENS, method: "POST" }).reply(201, { ...item("t1"), token: VALUE });
    await expect(client().createToken({ description: "d" })).resolves.toMatchObject({ id: "t1" });
    expect(sleeps).toEqual([3100]);
  });

  it("lists every page through the Link header", async () => {
    const pool = agent.get(API);
    pool.intercept({ path: `${TOKENS}?per_page=100`, method: "GET" }).reply(200, [item("a"), item("b")], {
      headers: { link: `<${API}${TOKENS}?page=2&per_page=100>; rel="next"` },
    });
    pool
      .intercept({ path: `${TOKENS}?page=2&per_page=100`, method: "GET" })
      .reply(200, [item("c")], { headers: { link: `<${API}${TOKENS}?page=1&per_page=100>; rel="prev"` } });
    expect((await client().listTokens()).map((t) => t.id)).toEqual(["a", "b", "c"]);
  });

  it("retries GET on 5xx, network errors and 429 with backoff, honouring the later reset", async () => {
    const pool = agent.get(API);
    pool.intercept({ path: `${TOKENS}/t1`, method: "GET" }).reply(503, "unavailable");
    pool.intercept({ path: `${TOKENS}/t1`, method: "GET" }).replyWithError(new Error("ECONNRESET"));
    pool
      .intercept({ path: `${TOKENS}/t1`, method: "GET" })
      .reply(429, "{}", { headers: { "ratelimit-reset": "1", "ratelimit-user-reset": "7" } });
    pool.intercept({ path: `${TOKENS}/t1`, method: "GET" }).reply(200, item("t1"));
    const retries: number[] = [];
    const got = await client({ onRetry: (i) => retries.push(i.status) }).getToken("t1");
    expect(got?.id).toBe("t1");
    expect(retries).toEqual([503, 0, 429]);
    expect(sleeps).toHaveLength(3);
    expect(sleeps[2]).toBe(7100);
  });

  it("gives up after maxAttempts with the last status", async () => {
    agent
      .get(API)
      .intercept({ path: `${TOKENS}/t1`, method: "GET" })
      .reply(500, "boom")
      .times(3);
    await expect(client({ maxAttempts: 3 }).getToken("t1")).rejects.toMatchObject({
      name: "BuildkiteApiError",
      status: 500,
    });
  });

  it("does not retry 4xx other than 429", async () => {
    agent
      .get(API)
      .intercept({ path: `${TOKENS}/t1`, method: "GET" })
      .reply(403, { message: "Forbidden" });
    const e = await client()
      .getToken("t1")
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(BuildkiteApiError);
    expect((e as BuildkiteApiError).bodySnippet).toContain("Forbidden");
    expect(sleeps).toEqual([]);
  });

  it("treats a missing token as undefined and deleting a gone token as success", async () => {
    const pool = agent.get(API);
    pool.intercept({ path: `${TOKENS}/gone`, method: "GET" }).reply(404, { message: "Not Found" });
    pool.intercept({ path: `${TOKENS}/gone`, method: "DELETE" }).reply(404, { message: "Not Found" });
    pool.intercept({ path: `${TOKENS}/t1`, method: "DELETE" }).reply(204, "");
    expect(await client().getToken("gone")).toBeUndefined();
    expect(await client().deleteToken("gone")).toBe("already-gone");
    expect(await client().deleteToken("t1")).toBe("deleted");
  });

  it("retries DELETE (idempotent) on 5xx", async () => {
    const pool = agent.get(API);
    pool.intercept({ path: `${TOKENS}/t1`, method: "DELETE" }).reply(502, "");
    pool.intercept({ path: `${TOKENS}/t1`, method: "DELETE" }).reply(204, "");
    expect(await client().deleteToken("t1")).toBe("deleted");
  });

  it("verifies an agent token against the metrics endpoint with Token auth", async () => {
    const pool = agent.get(AGENT);
    pool
      .intercept({ path: "/v3/metrics", method: "GET", headers: { authorization: `Token ${VALUE}` } })
      .reply(200, { organization: { slug: "acme" } });
    pool.intercept({ path: "/v3/metrics", method: "GET" }).reply(401, { message: "Invalid token" });
    expect(await client().verifyAgentToken(VALUE)).toEqual({ valid: true, organizationSlug: "acme" });
    expect(await client().verifyAgentToken("bkct_wrong_wrong_wrong_wrong_wrong")).toEqual({
      valid: false,
      status: 401,
    });
  });

  it("stops before the caller's deadline instead of sleeping past it", async () => {
    agent
      .get(API)
      .intercept({ path: `${TOKENS}/t1`, method: "GET" })
      .reply(429, "{}", { headers: { "ratelimit-reset": "30" } });
    const e = await client({ remainingMs: () => 12_000, timeoutMs: 2_000 })
      .getToken("t1")
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DeadlineError);
    expect(sleeps).toEqual([]);
  });

  it("times out a hanging request", async () => {
    agent
      .get(API)
      .intercept({ path: `${TOKENS}/t1`, method: "GET" })
      .reply(200, item("t1"))
      .delay(500);
    await expect(client({ timeoutMs: 50, maxAttempts: 1 }).getToken("t1")).rejects.toMatchObject({
      status: 0,
    });
  });

  it("puts no token value in an error, even when the server echoes it", async () => {
    agent
      .get(AGENT)
      .intercept({ path: "/v3/metrics", method: "GET" })
      .reply(500, `{"echo":"${VALUE}"}`)
      .times(5);
    const e = await client()
      .verifyAgentToken(VALUE)
      .catch((x: unknown) => x);
    expect(String((e as Error).message)).not.toContain(VALUE);
    expect(JSON.stringify(e)).not.toContain(VALUE);
  });
});

describe("nextLink", () => {
  it("follows rel=next on the same origin only", () => {
    expect(nextLink(`<${API}/x?page=2>; rel="next", <${API}/x?page=9>; rel="last"`, API)).toBe(
      `${API}/x?page=2`,
    );
    // Another origin is an error: following it leaks the bearer token, stopping hides tokens.
    expect(() => nextLink(`<https://evil.test/x?page=2>; rel="next"`, API)).toThrow(/another origin/);
    expect(() => nextLink(`<${API}/v2/other?page=2>; rel="next"`, API, "/v2/x")).toThrow(
      /not a page of this list/,
    );
    expect(nextLink(null, API)).toBeUndefined();
  });
});

/** A fetch that answers with the given Response (no network), recording the init it was given. */
function fakeFetch(answer: (init: RequestInit, n: number) => Response | Promise<Response>) {
  const inits: RequestInit[] = [];
  const impl = (async (_url: string, init: RequestInit) => {
    inits.push(init);
    return answer(init, inits.length);
  }) as unknown as typeof fetch;
  return { impl, inits };
}

/** A body that sends `first` and then stalls until the request's signal aborts it. */
function stallingBody(signal: AbortSignal | null | undefined, first = "[") {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode(first));
      signal?.addEventListener("abort", () => controller.error(signal.reason));
    },
  });
}

describe("BuildkiteClient against a hostile server", () => {
  it("never follows a redirect: fetch is told redirect=error, and a 3xx that still arrives is refused", async () => {
    const f = fakeFetch(
      () => new Response("", { status: 307, headers: { location: "https://evil.test/tokens" } }),
    );
    await expect(client({ fetch: f.impl }).createToken({ description: "d" })).rejects.toMatchObject({
      name: "BuildkiteApiError",
      status: 307,
    });
    expect(f.inits[0]?.redirect).toBe("error");
    // A verify answered by a redirect is not a valid token.
    await expect(client({ fetch: f.impl }).verifyAgentToken(VALUE)).rejects.toMatchObject({ status: 307 });
  });

  it("caps bodies: a huge list is an error, not an out-of-memory", async () => {
    const chunk = new TextEncoder().encode(`${JSON.stringify(item("t"))},`.repeat(1_000));
    let sent = 0;
    const f = fakeFetch(
      () =>
        new Response(
          new ReadableStream<Uint8Array>({
            pull(controller) {
              sent += chunk.byteLength;
              if (sent > 300 * 1024 * 1024) controller.close();
              else controller.enqueue(chunk);
            },
          }),
          { status: 200 },
        ),
    );
    await expect(client({ fetch: f.impl, maxAttempts: 1 }).listTokens()).rejects.toThrow(/larger than/);
    expect(sent).toBeLessThan(8 * 1024 * 1024);
  });

  it("refuses a declared Content-Length over the cap without reading it", async () => {
    const f = fakeFetch(
      () => new Response("[]", { status: 200, headers: { "content-length": String(500 * 1024 * 1024) } }),
    );
    await expect(client({ fetch: f.impl, maxAttempts: 1 }).listTokens()).rejects.toThrow(/larger than/);
  });

  it.each([
    ["[null]", /list item 0 is null/],
    ['[{"id":"t1"}, 7]', /list item 1 is number/],
    ['[{"description":"no id"}]', /without an id/],
    ['[{"id":"t1","description":{"x":1}}]', /non-string description/],
    ['{"not":"a list"}', /expected a list/],
    ["not json", /invalid JSON/],
  ])("validates list items: %s is a clear error", async (body, message) => {
    const f = fakeFetch(() => new Response(body, { status: 200 }));
    const error = await client({ fetch: f.impl })
      .listTokens()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BuildkiteApiError);
    expect((error as Error).message).toMatch(message);
  });

  it.each([["null"], ["[]"], ['"text"']])(
    "a create answered with %s is an error, not a TypeError",
    async (body) => {
      const f = fakeFetch(() => new Response(body, { status: 201 }));
      await expect(client({ fetch: f.impl }).createToken({ description: "d" })).rejects.toBeInstanceOf(
        BuildkiteApiError,
      );
    },
  );

  it("a list whose Link points to another origin is an error, and nothing is sent there", async () => {
    const f = fakeFetch(
      () =>
        new Response(JSON.stringify([item("t1")]), {
          status: 200,
          headers: {
            link: '<https://evil.test/v2/organizations/acme/clusters/c1/tokens?page=2>; rel="next"',
          },
        }),
    );
    await expect(client({ fetch: f.impl }).listTokens()).rejects.toThrow(/another origin/);
    expect(f.inits).toHaveLength(1);
  });

  it("retries a body that stalls past the timeout for an idempotent call", async () => {
    const f = fakeFetch((init, n) =>
      n === 1
        ? new Response(stallingBody(init.signal), { status: 200 })
        : new Response(JSON.stringify([item("t1")]), { status: 200 }),
    );
    const tokens = await client({ fetch: f.impl, timeoutMs: 50 }).listTokens();
    expect(tokens.map((t) => t.id)).toEqual(["t1"]);
    expect(f.inits).toHaveLength(2);
  });

  it("never retries a create whose body stalled: the token may exist", async () => {
    const f = fakeFetch((init) => new Response(stallingBody(init.signal, '{"id":'), { status: 201 }));
    await expect(
      client({ fetch: f.impl, timeoutMs: 50 }).createToken({ description: "d" }),
    ).rejects.toMatchObject({
      status: 0,
      message: expect.stringContaining("body could not be read"),
    });
    expect(f.inits).toHaveLength(1);
  });
});

describe("BuildkiteClient agents", () => {
  const AGENTS = "/v2/organizations/acme/agents";

  it("lists agents across pages with the instance id from their aws:instance-id meta-data", async () => {
    agent
      .get(API)
      .intercept({ path: `${AGENTS}?per_page=100`, method: "GET" })
      .reply(
        200,
        [{ id: "a1", connection_state: "connected", meta_data: ["queue=default", "aws:instance-id=i-1"] }],
        { headers: { link: `<${API}${AGENTS}?page=2&per_page=100>; rel="next"` } },
      );
    agent
      .get(API)
      .intercept({ path: `${AGENTS}?page=2&per_page=100`, method: "GET" })
      .reply(200, [{ id: "a2", connection_state: "disconnected", meta_data: [] }]);
    expect(await client().listAgents()).toEqual([
      { id: "a1", connectionState: "connected", instanceId: "i-1" },
      { id: "a2", connectionState: "disconnected", instanceId: undefined },
    ]);
  });

  it("refuses an agent list holding something that is not an agent", async () => {
    agent
      .get(API)
      .intercept({ path: `${AGENTS}?per_page=100`, method: "GET" })
      .reply(200, [null]);
    await expect(client().listAgents()).rejects.toBeInstanceOf(BuildkiteApiError);
  });

  it("stops an agent gracefully: PUT …/stop with force false", async () => {
    let sent: unknown;
    agent
      .get(API)
      .intercept({
        path: `${AGENTS}/a1/stop`,
        method: "PUT",
        body: (b) => {
          sent = JSON.parse(b);
          return true;
        },
      })
      .reply(204, "");
    await client().stopAgent("a1");
    expect(sent).toEqual({ force: false });
  });
});
