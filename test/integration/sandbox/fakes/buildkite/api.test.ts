import { describe, expect, it } from "vitest";
import { startBuildkiteApi } from "../../../../../sandbox/fakes/buildkite/api";
import { API_TOKEN, CLUSTER, ORG, TOKENS, useBuildkiteApi } from "../../../../support/buildkite-api";

/** The composed stand-in (api.ts): options reach every part, and reset() spans them. */
const bk = useBuildkiteApi();
const { rest } = bk;

describe("composition", () => {
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

  it("reset clears knobs but keeps tokens", async () => {
    const { id } = bk.api.addToken({ description: "kept" });
    bk.api.failNext(5);
    bk.api.rateLimitNext(5, 9);
    bk.api.dropNext(5);
    bk.api.setFlaky({ probability: 1, seed: 1 });
    bk.api.setScopes([]);
    bk.api.setLatency(10_000);
    bk.api.failNextCreateAfterCommit(1);
    bk.api.reset();
    expect((await rest(`${TOKENS}/${id}`)).status).toBe(200);
    expect((await rest(TOKENS, { method: "POST", body: { description: "after reset" } })).status).toBe(201);
    expect(bk.api.tokens()).toHaveLength(2);
  });
});
