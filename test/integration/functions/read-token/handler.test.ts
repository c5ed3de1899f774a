import { randomUUID } from "node:crypto";
import { CreateSecretCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import type { LambdaFunctionURLEventWithIAMAuthorizer, LambdaFunctionURLResult } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MotoServer, startMoto } from "../../../../sandbox/fakes/aws/moto";
import { captureOutput } from "../../../support/capture-output";
import { assumedRole, urlEvent } from "../../../support/read-token-events";

/**
 * The real read-token handler against moto: configured from the environment as in AWS, running in
 * a region that has no replica of the secret (so every read falls back to the primary).
 */
const PRIMARY = "us-east-1";
const FUNCTION_REGION = "eu-west-1";
const token = `bkct_${randomUUID().replaceAll("-", "")}`;
let moto: MotoServer;
let versionId: string;
let handler: (event: LambdaFunctionURLEventWithIAMAuthorizer) => Promise<LambdaFunctionURLResult>;
const output = captureOutput();
const savedEnv = { ...process.env };

beforeAll(async () => {
  moto = await startMoto();
  const sm = new SecretsManagerClient({
    region: PRIMARY,
    endpoint: moto.url,
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
  });
  const created = await sm.send(
    new CreateSecretCommand({ Name: "buildkite/agent-token", SecretString: token }),
  );
  versionId = created.VersionId ?? "";
  Object.assign(process.env, {
    AWS_REGION: FUNCTION_REGION,
    AWS_ACCESS_KEY_ID: "test",
    AWS_SECRET_ACCESS_KEY: "test",
    AWS_ENDPOINT_URL: moto.url,
    TOKEN_SECRET_ARN: created.ARN,
    ALLOWED_PRINCIPALS: "111111111111, arn:aws:iam::222222222222:role/ci/agent-reader",
    CACHE_MAX_AGE_SECONDS: "60",
  });
  ({ handler } = await import("../../../../functions/read-token/handler"));
});

afterAll(async () => {
  output.restore();
  process.env = savedEnv;
  await moto?.stop();
});

const body = (res: LambdaFunctionURLResult) =>
  typeof res === "object" && res.body ? (JSON.parse(res.body) as Record<string, unknown>) : {};
const logs = () =>
  output.lines.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>);

describe("read-token against moto", () => {
  it("serves an allowed account, falling back from its own region to the primary", async () => {
    const res = await handler(
      urlEvent({ accountId: "111111111111", userArn: "arn:aws:iam::111111111111:user/ci" }),
    );
    expect(res).toMatchObject({ statusCode: 200, headers: { "cache-control": "no-store" } });
    expect(body(res)).toEqual({ token, versionId, fetchedAt: expect.any(String) });
    const served = logs().find((l) => l.message === "token served");
    expect(served).toMatchObject({ versionId, region: PRIMARY, caller: { accountId: "111111111111" } });
  });

  it("serves an allowed role's assumed-role session (role path in the config)", async () => {
    const res = await handler(urlEvent(assumedRole("222222222222", "agent-reader", "i-0abc")));
    expect(res).toMatchObject({ statusCode: 200 });
    expect(body(res).token).toBe(token);
  });

  it("denies anyone else with 403 and logs who asked", async () => {
    const caller = assumedRole("333333333333", "agent-reader");
    const res = await handler(urlEvent(caller));
    expect(res).toMatchObject({ statusCode: 403 });
    expect(JSON.stringify(res)).not.toContain(token);
    const denied = logs().filter((l) => l.message === "caller denied");
    expect(denied.at(-1)).toMatchObject({ caller });
  });

  it("answers 405 to anything but GET", async () => {
    const res = await handler(urlEvent({ accountId: "111111111111" }, "POST"));
    expect(res).toMatchObject({ statusCode: 405, headers: { allow: "GET" } });
    expect(JSON.stringify(res)).not.toContain(token);
  });

  it("never logged the token", () => {
    expect(output.text()).not.toContain(token);
  });
});
