import { afterEach, beforeEach, expect } from "vitest";
import { type BuildkiteApi, startBuildkiteApi } from "../../sandbox/fakes/buildkite/api";

export const ORG = "acme";
export const CLUSTER = "0190c2f4-7c1e-7f4a-9a51-3c6f2f1b8d10";
export const API_TOKEN = "bkua_sandbox_test_token";
export const TOKENS = `/v2/organizations/${ORG}/clusters/${CLUSTER}/tokens`;
export const MINUTE = 60_000;

export interface BuildkiteApiFixture {
  /** A fresh stand-in for every test, closed after it. */
  api: BuildkiteApi;
  /** The server's clock: 30 s into a minute, so the rate-limit window resets in 30 s. */
  clock: number;
  rest(path: string, init?: { method?: string; body?: unknown; token?: string | null }): Promise<Response>;
  agent(path: string, value: string, body?: unknown): Promise<Response>;
  /** POST a token and expect 201. */
  create(body: unknown): Promise<Record<string, unknown>>;
}

/** Registers beforeEach/afterEach hooks that start and close a Buildkite stand-in on loopback. */
export function useBuildkiteApi(): BuildkiteApiFixture {
  const bk: BuildkiteApiFixture = {
    api: undefined as unknown as BuildkiteApi, // set by beforeEach before any test reads it
    clock: 0,
    rest(path, init = {}) {
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (init.token !== null) headers.authorization = `Bearer ${init.token ?? API_TOKEN}`;
      return fetch(`${bk.api.url}${path}`, {
        method: init.method ?? "GET",
        headers,
        ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
      });
    },
    agent(path, value, body) {
      return fetch(`${bk.api.url}${path}`, {
        method: body === undefined ? "GET" : "POST",
        headers: { authorization: `Token ${value}`, "content-type": "application/json" },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    },
    async create(body) {
      const res = await bk.rest(TOKENS, { method: "POST", body });
      expect(res.status).toBe(201);
      return (await res.json()) as Record<string, unknown>;
    },
  };
  beforeEach(async () => {
    bk.clock = Date.parse("2030-01-01T12:00:30.000Z");
    bk.api = await startBuildkiteApi({
      organization: ORG,
      clusterId: CLUSTER,
      apiToken: API_TOKEN,
      now: () => bk.clock,
    });
  });
  afterEach(async () => {
    await bk.api.close();
  });
  return bk;
}

/** rel → URL from an RFC 8288 Link header. */
export function links(header: string | null): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (header ?? "").split(",")) {
    const m = /<([^>]+)>;\s*rel="([^"]+)"/.exec(part.trim());
    if (m?.[1] && m[2]) out[m[2]] = m[1];
  }
  return out;
}
