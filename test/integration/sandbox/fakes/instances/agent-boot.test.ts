import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { writeAgentConfig } from "../../../../../sandbox/fakes/autoscaling/agent-config";
import { agentBoot, type BootHook } from "../../../../../sandbox/fakes/instances/agent-boot";
import { listen } from "../../../../../sandbox/lib/listen";

/**
 * The agent start's registration (agent-boot.ts) over a real HTTP server: what it sends, how it
 * retries as the agent does (429/5xx, network errors; a 401 is final), its per-request timeout, and
 * that the token stays out of every reason it gives.
 */
const TOKEN = "bkct_registration-test-token-value";
let dir: string;
let server: Server;
let url: string;
let answers: number[];
let seen: Array<{ method?: string; url?: string; authorization?: string; body: unknown }>;
let hook: BootHook | undefined;

const body = async (req: IncomingMessage) => {
  let text = "";
  for await (const chunk of req) text += chunk;
  return JSON.parse(text) as unknown;
};

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "agent-boot-"));
  answers = [];
  seen = [];
  server = createServer(async (req, res) => {
    seen.push({
      method: req.method,
      url: req.url,
      authorization: req.headers.authorization,
      body: await body(req),
    });
    const status = answers.shift();
    if (status === undefined) return; // never answers: the caller's timeout decides
    res.writeHead(status).end("{}");
  });
  url = await listen(server, "127.0.0.1", 0);
});

afterEach(async () => {
  hook?.destroy();
  hook = undefined;
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

async function start(options: { attempts?: number; timeoutMs?: number } = {}) {
  hook = agentBoot({
    motoUrl: "http://127.0.0.1:9",
    secretName: "unused",
    buildkiteUrl: url,
    registerAttempts: options.attempts ?? 3,
    retryDelayMs: 1,
    requestTimeoutMs: options.timeoutMs ?? 5_000,
  });
  const configPath = join(dir, "i-1", "buildkite-agent.cfg");
  await writeAgentConfig(configPath, {
    platform: "Linux",
    token: TOKEN,
    stackName: "ci",
    instanceId: "i-1",
    endpoint: `${url}/v3`,
  });
  return hook.startAgent({
    region: "us-east-1",
    groupName: "ci",
    instanceId: "i-1",
    configPath,
    platform: "Linux",
  });
}

describe("agentBoot's registration", () => {
  it("posts the instance's name and meta-data with the cfg's token, retrying a 503", async () => {
    answers = [503, 200];
    expect(await start()).toEqual({ ok: true, reason: "registered with a token read via the agent cfg" });
    expect(seen).toHaveLength(2);
    expect(seen[1]).toEqual({
      method: "POST",
      url: "/v3/register",
      authorization: `Token ${TOKEN}`,
      body: { name: "i-1", hostname: "i-1", meta_data: ["aws:instance-id=i-1"] },
    });
  });

  it("stops at a 401, and gives up after its attempts on 429, without the token in the reason", async () => {
    answers = [401];
    const refused = await start();
    expect(refused).toEqual({
      ok: false,
      reason: "agent registration refused: HTTP 401 (token read via the agent cfg)",
    });
    expect(seen).toHaveLength(1);
    answers = [429, 429, 429];
    const throttled = await start();
    expect(throttled.reason).toBe("agent registration refused: HTTP 429 (token read via the agent cfg)");
    expect(seen).toHaveLength(4);
    expect(JSON.stringify([refused, throttled])).not.toContain(TOKEN);
  });

  it("times a silent server out per request and tries again", async () => {
    answers = [];
    const result = await start({ attempts: 2, timeoutMs: 200 });
    expect(result).toEqual({
      ok: false,
      reason: "agent registration refused: TimeoutError (token read via the agent cfg)",
    });
    expect(seen).toHaveLength(2);
  });
});
