import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { createReadTokenHandler } from "../../../../functions/read-token/handler";
import { captureOutput } from "../../../support/capture-output";
import { assumedRole, urlEvent } from "../../../support/read-token-events";

const TOKEN = "bkct_handlerunit0000000000000000000000";
const ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:buildkite/agent-token-AbCdEf";
const sm = mockClient(SecretsManagerClient);
const output = captureOutput();
const savedEnv = { ...process.env };

beforeEach(() => {
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

// A new handler per test is a new container: no module resets needed.
const load = async () => createReadTokenHandler();

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
    const error: unknown = await handler(urlEvent(assumedRole("222222222222", "agent-reader"))).catch(
      (e: unknown) => e,
    );
    // What the runtime records: the name and a message naming the setting, and no cause attached.
    expect(error).toMatchObject({ name: "ConfigError", message: expect.stringContaining(variable) });
    expect((error as Error).cause).toBeUndefined();
    expect(output.text()).toContain(variable);
    expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(0);
  });

  it("answers 503 (not middy's TimeoutError) when the read is still running at the early-timeout margin", async () => {
    sm.on(GetSecretValueCommand).callsFake(() => new Promise(() => {})); // never answers
    const handler = await load();
    const started = Date.now();
    const response = await handler(urlEvent(assumedRole("222222222222", "agent-reader")), {
      awsRequestId: "req-timeout-1",
      functionName: "stack-ReadTokenFunction-abc",
      // Aborted at 1.2 s (3 s margin); the run gets the grace up to 1 s before the deadline, then 503.
      getRemainingTimeInMillis: () => 4_200 - (Date.now() - started),
    });
    expect(response).toMatchObject({ statusCode: 503 });
    expect(Date.now() - started).toBeLessThan(4_000);
    const logged = output.lines.map((l) => l).join("\n");
    expect(logged).toContain('"awsRequestId":"req-timeout-1"');
    expect(logged).toContain('"functionName":"stack-ReadTokenFunction-abc"');
  });
});
