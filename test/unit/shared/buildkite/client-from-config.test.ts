import { type Dispatcher, getGlobalDispatcher, MockAgent, setGlobalDispatcher } from "undici";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { buildkiteClientFromConfig } from "../../../../shared/buildkite/client-from-config";
import type { BuildkiteConfig } from "../../../../shared/lib/config";

const CONFIG: BuildkiteConfig = {
  organization: "acme",
  clusterId: "01234567-89ab-cdef-0123-456789abcdef",
  apiUrl: "https://api.buildkite.test",
  agentApiUrl: "https://agent.buildkite.test",
  apiTokenSecretArn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:bk/api-XyZ789",
};
const TOKENS = `/v2/organizations/acme/clusters/${CONFIG.clusterId}/tokens?per_page=100`;

let agent: MockAgent;
let previous: Dispatcher;
beforeEach(() => {
  agent = new MockAgent();
  agent.disableNetConnect();
  previous = getGlobalDispatcher();
  setGlobalDispatcher(agent);
});
afterEach(async () => {
  setGlobalDispatcher(previous);
  await agent.close();
});

function recorder() {
  const lines: Array<[string, string, unknown]> = [];
  return {
    lines,
    logger: {
      info: (m: string, f?: unknown) => lines.push(["info", m, f]),
      warn: (m: string, f?: unknown) => lines.push(["warn", m, f]),
    },
  };
}

describe("buildkiteClientFromConfig", () => {
  it("calls the configured organization and cluster with the loaded token, and logs retries at warn by default", async () => {
    let loads = 0;
    const api = agent.get(CONFIG.apiUrl);
    api.intercept({ path: TOKENS, method: "GET" }).reply(503, "busy");
    api
      .intercept({ path: TOKENS, method: "GET", headers: { authorization: "Bearer api-token-from-secret" } })
      .reply(200, []);
    const { lines, logger } = recorder();
    const client = buildkiteClientFromConfig(CONFIG, {
      apiToken: async () => {
        loads++;
        return "api-token-from-secret";
      },
      logger,
      tuning: { maxAttempts: 2, baseDelayMs: 1, sleep: async () => {} },
    });
    expect(await client.listTokens()).toEqual([]);
    expect(loads).toBeGreaterThan(0);
    expect(lines.map(([level, message]) => [level, message])).toEqual([
      ["warn", "retrying Buildkite API call"],
    ]);
    expect(JSON.stringify(lines)).not.toContain("api-token-from-secret");
  });

  it("logs retries at the level asked for", async () => {
    const api = agent.get(CONFIG.apiUrl);
    api.intercept({ path: TOKENS, method: "GET" }).reply(500, "oops");
    api.intercept({ path: TOKENS, method: "GET" }).reply(200, []);
    const { lines, logger } = recorder();
    const client = buildkiteClientFromConfig(CONFIG, {
      apiToken: async () => "t",
      logger,
      retryLevel: "info",
      tuning: { maxAttempts: 2, baseDelayMs: 1, sleep: async () => {} },
    });
    await client.listTokens();
    expect(lines.map(([level]) => level)).toEqual(["info"]);
  });
});
