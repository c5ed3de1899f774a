import { randomUUID } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateSecretCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { PutParameterCommand, SSMClient } from "@aws-sdk/client-ssm";
import type { LambdaFunctionURLEventWithIAMAuthorizer, LambdaFunctionURLResult } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../../../cli/main";
import { type MotoServer, startMoto } from "../../../../sandbox/fakes/aws/moto";
import { secretsManagerClients } from "../../../../shared/lib/aws/secrets-manager";
import { ssmClients } from "../../../../shared/lib/aws/ssm";
import { createTokenReader } from "../../../../shared/token-reader/reader";
import { secretsManagerSource } from "../../../../shared/token-reader/secrets-manager-source";
import { ssmReferenceSource } from "../../../../shared/token-reader/ssm-source";
import { captureOutput } from "../../../support/capture-output";
import { assumedRole, urlEvent } from "../../../support/read-token-events";
import { startTokenScan } from "../../../support/token-scan";

/**
 * Leak test: every path of the reader, the Lambda and the CLI (successes, fallbacks, stale
 * values, denials, failures) runs with all output captured (our log sink, stdout and stderr). No
 * token value may appear anywhere but where it is meant to go (the CLI's stdout for `token`, the
 * files it writes, the 200 response body). And nothing may even have needed redacting: the
 * logger's redaction is the last line of defence, not what keeps this test green.
 */
const REGION = "us-east-1";
const token = `bkct_${randomUUID().replaceAll("-", "")}`;
const paramValue = `param_${randomUUID().replaceAll("-", "")}`;
let moto: MotoServer;
let secretArn: string;
let dir: string;
const output = captureOutput();
// Wraps captureOutput's sink; also scans what the CLI runs wrote to their own stdout/stderr.
const scan = startTokenScan();
scan.register(token);
scan.register(paramValue);
const savedEnv = { ...process.env };

beforeAll(async () => {
  moto = await startMoto();
  const credentials = { accessKeyId: "test", secretAccessKey: "test" };
  const sm = new SecretsManagerClient({ region: REGION, endpoint: moto.url, credentials });
  secretArn =
    (await sm.send(new CreateSecretCommand({ Name: "buildkite/agent-token", SecretString: token }))).ARN ??
    "";
  const ssm = new SSMClient({ region: REGION, endpoint: moto.url, credentials });
  await ssm.send(new PutParameterCommand({ Name: "/ci/param", Value: paramValue, Type: "SecureString" }));
  dir = await mkdtemp(join(tmpdir(), "token-leak-"));
  Object.assign(process.env, {
    AWS_REGION: "eu-west-1",
    AWS_ACCESS_KEY_ID: "test",
    AWS_SECRET_ACCESS_KEY: "test",
    AWS_ENDPOINT_URL: moto.url,
    TOKEN_SECRET_ARN: secretArn,
    ALLOWED_PRINCIPALS: "111111111111",
    LOG_LEVEL: "debug",
  });
});

afterAll(async () => {
  scan.stop();
  output.restore();
  process.env = savedEnv;
  await moto?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function io() {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return {
    stdout,
    stderr,
    io: {
      stdout: { write: (s: string) => stdout.push(s) },
      stderr: { write: (s: string) => stderr.push(s) },
      env: { ...process.env, SOME_VAR: "plain-value" },
    },
  };
}

describe("no token in any output", () => {
  it("reader: both sources, fallback, forced refresh, stale value, failures", async () => {
    let t = Date.now();
    for (const source of ["secretsmanager", "ssm"] as const) {
      const reader = createTokenReader({
        secretId: secretArn,
        regions: ["eu-west-1", REGION],
        source:
          source === "ssm" ? ssmReferenceSource(ssmClients()) : secretsManagerSource(secretsManagerClients()),
        now: () => t,
        errorBackoffMs: 0,
      });
      expect((await reader.read()).token).toBe(token);
      expect((await reader.read({ forceRefresh: true })).token).toBe(token);
    }
    let endpoint = moto.url;
    const flaky = createTokenReader({
      secretId: secretArn,
      regions: [REGION],
      now: () => t,
      errorBackoffMs: 0,
      source: secretsManagerSource(
        (region) =>
          new SecretsManagerClient({
            region,
            endpoint,
            maxAttempts: 1,
            credentials: { accessKeyId: "test", secretAccessKey: "test" },
          }),
      ),
    });
    await flaky.read();
    endpoint = "http://127.0.0.1:1";
    t += 61_000;
    expect((await flaky.read()).stale).toBe(true);
    t += 10 * 60_000;
    await expect(flaky.read()).rejects.toThrow(/transient/);
    await expect(
      createTokenReader({
        secretId: "missing",
        regions: [REGION],
        source: secretsManagerSource(secretsManagerClients()),
      }).read(),
    ).rejects.toThrow(/not-found/);
  });

  it("Lambda: allowed, denied, wrong method", async () => {
    const { handler } = await import("../../../../functions/read-token/handler");
    const ok = (await handler(urlEvent({ accountId: "111111111111" }))) as Exclude<
      LambdaFunctionURLResult,
      string
    >;
    expect(ok.body).toContain(token); // the one place it belongs
    const denied = await handler(
      urlEvent(assumedRole("999999999999", "x")) as LambdaFunctionURLEventWithIAMAuthorizer,
    );
    const post = await handler(urlEvent({ accountId: "111111111111" }, "POST"));
    expect(JSON.stringify([denied, post])).not.toContain(token);
  });

  it("CLI: token to stdout only; write-config, render and their failures print nothing secret", async () => {
    const run = io();
    expect(
      await main(["token", "--secret-id", "buildkite/agent-token", "--fallback-region", REGION], run.io),
    ).toBe(0);
    expect(run.stdout.join("")).toBe(`${token}\n`);
    expect(run.stderr.join("")).not.toContain(token);

    const cfg = join(dir, "agent.cfg");
    await writeFile(cfg, 'name="x"\n');
    const w = io();
    expect(await main(["write-config", "--file", cfg, "--secret-id", secretArn], w.io)).toBe(0);
    expect(await readFile(cfg, "utf8")).toContain(token);

    const tmpl = join(dir, "t.tmpl");
    await writeFile(
      tmpl,
      `A={{ secret awsSecret://${secretArn} }}\nB={{ secret ssm:///ci/param }}\nC={{ secret env://SOME_VAR }}\n`,
    );
    const r = io();
    expect(
      await main(["render", "--template", tmpl, "--out", join(dir, "out"), "--region", REGION], r.io),
    ).toBe(0);

    await writeFile(
      tmpl,
      `A={{ secret awsSecret://${secretArn} }}\nB={{ secret ssm:///ci/param }}\nC={{ secret awsSecret://gone }}\n`,
    );
    const bad = io();
    expect(
      await main(["render", "--template", tmpl, "--out", join(dir, "bad"), "--region", REGION], bad.io),
    ).toBe(1);
    for (const captured of [w, r, bad]) {
      const all = captured.stdout.join("") + captured.stderr.join("");
      scan.record("cli output", all);
      expect(all).not.toContain(token);
      expect(all).not.toContain(paramValue);
    }
  });

  it("nothing captured contains a token, and nothing even needed redacting", () => {
    const text = output.text();
    expect(text.length).toBeGreaterThan(0);
    expect(text).not.toContain(token);
    expect(text).not.toContain(paramValue);
    expect(text).not.toContain("[REDACTED]");
    expect(text).not.toContain("[redacted]");
    scan.assertClean();
    expect(scan.redacted()).toEqual([]);
  });
});
