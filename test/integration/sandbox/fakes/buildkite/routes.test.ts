import { describe, expect, it, vi } from "vitest";
import {
  API_TOKEN,
  CLUSTER,
  links,
  MINUTE,
  ORG,
  TOKENS,
  useBuildkiteApi,
} from "../../../../support/buildkite-api";

/** The route handlers (routes.ts): cluster tokens and agents over REST, and the agent API. */
const bk = useBuildkiteApi();
const { rest, agent, create } = bk;

describe("cluster tokens REST API", () => {
  it("creates, lists, gets and deletes a token", async () => {
    const expiresAt = new Date(bk.clock + 60 * MINUTE).toISOString();
    const created = await create({ description: "rotation v1", expires_at: expiresAt });
    expect(created).toMatchObject({
      description: "rotation v1",
      allowed_ip_addresses: null,
      expires_at: expiresAt,
      created_at: new Date(bk.clock).toISOString(),
      cluster_url: `${bk.api.url}/v2/organizations/${ORG}/clusters/${CLUSTER}`,
      url: `${bk.api.url}${TOKENS}/${String(created.id)}`,
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

    const [stored] = bk.api.tokens();
    expect(stored).toMatchObject({ id, value: created.token, valid: false, revokedAt: new Date(bk.clock) });
    expect(bk.api.validTokens()).toEqual([]);
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
      expect(JSON.stringify(bk.api.requests())).not.toContain(value);
      expect(JSON.stringify(bk.api.registrations())).not.toContain(value);
      const written = [...out.mock.calls, ...err.mock.calls].map((call) => String(call[0])).join("\n");
      expect(written).not.toContain(value);
    } finally {
      out.mockRestore();
      err.mockRestore();
    }
  });

  it("paginates more than 100 tokens with absolute Link URLs", async () => {
    for (let i = 0; i < 205; i++) bk.api.addToken({ description: `seed ${i}` });

    const pages: { ids: string[]; rels: Record<string, string> }[] = [];
    let next: string | undefined = `${bk.api.url}${TOKENS}?per_page=100`;
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
    expect(ids).toEqual(bk.api.tokens().map((t) => t.id)); // creation order

    const [first, second, last] = pages.map((p) => p.rels);
    const page = (n: number) => `${bk.api.url}${TOKENS}?page=${n}&per_page=100`;
    expect(first).toEqual({ next: page(2), last: page(3) });
    expect(second).toEqual({ next: page(3), last: page(3), first: page(1), prev: page(1) });
    expect(last).toEqual({ first: page(1), prev: page(2) });
  });

  it("defaults per_page to 30 and clamps it to 100", async () => {
    for (let i = 0; i < 120; i++) bk.api.addToken({ description: `seed ${i}` });
    expect(((await (await rest(TOKENS)).json()) as unknown[]).length).toBe(30);
    const clamped = await rest(`${TOKENS}?per_page=500`);
    expect(((await clamped.json()) as unknown[]).length).toBe(100);
    expect(links(clamped.headers.get("link")).next).toBe(`${bk.api.url}${TOKENS}?page=2&per_page=100`);
  });

  it("rejects a missing or blank description with 422", async () => {
    for (const body of [{}, { description: "" }, { description: "   " }, { description: 7 }]) {
      const res = await rest(TOKENS, { method: "POST", body });
      expect(res.status).toBe(422);
      expect(await res.json()).toMatchObject({ message: "Validation failed: Description can't be blank" });
    }
    expect(bk.api.tokens()).toEqual([]);
  });

  it("requires expires_at to be ISO 8601 and at least 10 minutes ahead", async () => {
    for (const expires_at of [
      new Date(bk.clock + 9 * MINUTE).toISOString(),
      new Date(bk.clock - MINUTE).toISOString(),
      "next tuesday",
      12345,
    ]) {
      const res = await rest(TOKENS, { method: "POST", body: { description: "x", expires_at } });
      expect(res.status).toBe(422);
      expect(((await res.json()) as { message: string }).message).toMatch(/^Validation failed: Expires at/);
    }
    expect(bk.api.tokens()).toEqual([]);

    const exactly = new Date(bk.clock + 10 * MINUTE).toISOString();
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

describe("agent API", () => {
  const metricsBody = {
    agents: { idle: 0, busy: 0, total: 0, queues: {} },
    jobs: { scheduled: 0, running: 0, waiting: 0, total: 0, queues: {} },
    organization: { slug: ORG },
  };

  it("answers /v3/metrics for a valid token only", async () => {
    const { value } = bk.api.addToken({ description: "seed" });
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
    const ui = bk.api.addToken({ description: "revoked by a human" });
    bk.api.revokeToken(ui.id);
    expect((await agent("/v3/metrics", ui.value)).status).toBe(401);

    const created = await create({ description: "revoked by the API" });
    expect((await agent("/v3/metrics", String(created.token))).status).toBe(200);
    expect((await rest(`${TOKENS}/${String(created.id)}`, { method: "DELETE" })).status).toBe(204);
    expect((await agent("/v3/metrics", String(created.token))).status).toBe(401);
  });

  it("rejects a token once the bk.clock passes its expiry", async () => {
    const created = await create({
      description: "short-lived",
      expires_at: new Date(bk.clock + 15 * MINUTE).toISOString(),
    });
    const value = String(created.token);
    expect((await agent("/v3/metrics", value)).status).toBe(200);

    bk.clock += 15 * MINUTE; // expiry is exclusive: at expires_at the token is dead
    expect((await agent("/v3/metrics", value)).status).toBe(401);
    expect(bk.api.tokens()[0]).toMatchObject({ valid: false, revokedAt: null });
    expect(bk.api.validTokens()).toEqual([]);
  });

  it("registers agents and records every attempt", async () => {
    const good = bk.api.addToken({ description: "current" });
    const revoked = bk.api.addToken({ description: "old" });
    bk.api.revokeToken(revoked.id);

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
      endpoint: `${bk.api.url}/v3`,
    });

    bk.clock += 1000;
    expect((await agent("/v3/register", revoked.value, { name: "agent-2" })).status).toBe(401);
    expect((await agent("/v3/register", "bkct_unknown", { name: "agent-3" })).status).toBe(401);
    expect((await agent("/v3/register", good.value, {})).status).toBe(422);

    expect(bk.api.registrations()).toEqual([
      {
        at: new Date(bk.clock - 1000),
        name: "agent-1",
        tokenId: good.id,
        ok: true,
        status: 200,
        metaData: ["queue=default"],
      },
      { at: new Date(bk.clock), name: "agent-2", tokenId: revoked.id, ok: false, status: 401, metaData: [] },
      { at: new Date(bk.clock), name: "agent-3", tokenId: null, ok: false, status: 401, metaData: [] },
      { at: new Date(bk.clock), name: "", tokenId: good.id, ok: false, status: 422, metaData: [] },
    ]);
  });

  it("sends no rate-limit headers (those belong to the REST API)", async () => {
    const res = await agent("/v3/metrics", "bkct_unknown");
    expect(res.headers.get("ratelimit-remaining")).toBeNull();
  });
});
