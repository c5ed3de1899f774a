import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { captureOutput } from "../../../support/capture-output";
import { assumedRole, urlEvent } from "./events";

const TOKEN = "bkct_handlerunit0000000000000000000000";
const ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:buildkite/agent-token-AbCdEf";
const sm = mockClient(SecretsManagerClient);
const output = captureOutput();
const savedEnv = { ...process.env };

beforeEach(() => {
  vi.resetModules();
  sm.reset();
  process.env = {
    ...savedEnv,
    AWS_REGION: "us-east-1",
    TOKEN_SECRET_ARN: ARN,
    ALLOWED_PRINCIPALS: "arn:aws:iam::222222222222:role/agent-reader",
  };
});
afterEach(() => {
  expect(output.text()).not.toContain(TOKEN);
  output.lines.length = 0;
});
afterAll(() => {
  process.env = savedEnv;
  output.restore();
  sm.restore();
});

const load = async () => (await import("../../../../functions/read-token/handler")).handler;

describe("read-token handler", () => {
  it("builds one cached reader per container: two invocations, one GetSecretValue (AWSCURRENT)", async () => {
    sm.on(GetSecretValueCommand).resolves({ SecretString: TOKEN, VersionId: "v1", $metadata: {} });
    const handler = await load();
    const event = urlEvent(assumedRole("222222222222", "agent-reader"));
    const first = await handler(event);
    const second = await handler(event);
    expect(first).toMatchObject({ statusCode: 200 });
    expect(second).toMatchObject({ statusCode: 200 });
    expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(1);
    expect(sm.commandCalls(GetSecretValueCommand)[0]?.args[0].input).toEqual({
      SecretId: ARN,
      VersionStage: "AWSCURRENT",
    });
  });

  it("honours CACHE_MAX_AGE_SECONDS=0 (a call per request)", async () => {
    process.env.CACHE_MAX_AGE_SECONDS = "0";
    sm.on(GetSecretValueCommand).resolves({ SecretString: TOKEN, VersionId: "v1", $metadata: {} });
    const handler = await load();
    const event = urlEvent(assumedRole("222222222222", "agent-reader"));
    await handler(event);
    await handler(event);
    expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(2);
  });

  it.each([
    ["TOKEN_SECRET_ARN", undefined],
    ["ALLOWED_PRINCIPALS", undefined],
    ["ALLOWED_PRINCIPALS", "arn:aws:iam::222222222222:user/bob"],
    ["CACHE_MAX_AGE_SECONDS", "a minute"],
    ["FALLBACK_REGIONS", "nowhere"],
  ])("fails with a ConfigError naming %s (%s) and logs it", async (variable, raw) => {
    if (raw === undefined) delete process.env[variable];
    else process.env[variable] = raw;
    const handler = await load();
    // The runtime gets the sanitised error: the name and a message that names the setting.
    await expect(handler(urlEvent(assumedRole("222222222222", "agent-reader")))).rejects.toMatchObject({
      name: "ConfigError",
      message: expect.stringContaining(variable),
    });
    expect(output.text()).toContain(variable);
    expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(0);
  });
});
