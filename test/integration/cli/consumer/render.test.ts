import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PutSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { PutParameterCommand, SSMClient } from "@aws-sdk/client-ssm";
import { describe, expect, it } from "vitest";
import { CREDENTIALS, consumerCli, REGION } from "../../../support/consumer-cli";

/** `bk-agent-token render` (cli/consumer/render.ts), the real bundle against moto. */
const h = consumerCli();

describe("bk-agent-token render", () => {
  it("renders awsSecret://, ssm:// (decrypted) and env:// references into a 0600 file", async () => {
    const ssm = new SSMClient({ region: REGION, endpoint: h.moto.url, credentials: CREDENTIALS });
    const paramValue = h.newToken();
    await ssm.send(
      new PutParameterCommand({ Name: "/ci/registry-password", Value: paramValue, Type: "SecureString" }),
    );
    const template = join(h.dir, "env.tmpl");
    const out = join(h.dir, "agent.env");
    await writeFile(
      template,
      [
        "BUILDKITE_AGENT_TOKEN={{ secret awsSecret://buildkite/agent-token }}",
        `AGAIN={{secret awsSecret://${h.secret.arn}}}`,
        "REGISTRY_PASSWORD={{ secret ssm:///ci/registry-password }}",
        "QUEUE={{ secret env://AGENT_QUEUE }}",
        "literal {{ not a secret }}",
        "",
      ].join("\n"),
    );
    const run = await h.cli(["render", "--template", template, "--out", out], { AGENT_QUEUE: "deploy" });
    expect(run.code).toBe(0);
    expect(run.stdout).toBe("");
    expect(await readFile(out, "utf8")).toBe(
      [
        `BUILDKITE_AGENT_TOKEN=${h.secret.token}`,
        `AGAIN=${h.secret.token}`,
        `REGISTRY_PASSWORD=${paramValue}`,
        "QUEUE=deploy",
        "literal {{ not a secret }}",
        "",
      ].join("\n"),
    );
    expect((await stat(out)).mode & 0o777).toBe(0o600);
    expect(run.stderr).not.toContain(h.secret.token);
    expect(run.stderr).not.toContain(paramValue);
  });

  it.each([
    ["an unknown scheme", "X={{ secret vault://kv/agent }}", "vault://kv/agent"],
    ["a missing secret", "X={{ secret awsSecret://no/such/secret }}", "awsSecret://no/such/secret"],
    ["a missing parameter", "X={{ secret ssm:///no/such/param }}", "ssm:///no/such/param"],
    ["an unset variable", "X={{ secret env://NOT_SET_ANYWHERE }}", "env://NOT_SET_ANYWHERE"],
  ])("fails on %s, naming the reference, and writes no output", async (_label, line, ref) => {
    const template = join(h.dir, `bad-${randomUUID()}.tmpl`);
    const out = join(h.dir, `bad-${randomUUID()}.out`);
    await writeFile(template, `A={{ secret awsSecret://${h.secret.name} }}\n${line}\n`);
    const run = await h.cli(["render", "--template", template, "--out", out]);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain(ref);
    expect(run.stderr).not.toContain(h.secret.token);
    expect(existsSync(out)).toBe(false);
    expect((await readdir(h.dir)).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });

  it("leaves an existing output untouched when a reference fails", async () => {
    const template = join(h.dir, "partial.tmpl");
    const out = join(h.dir, "partial.out");
    await writeFile(out, "previous\n");
    await writeFile(
      template,
      "A={{ secret awsSecret://buildkite/agent-token }}\nB={{ secret awsSecret://gone }}\n",
    );
    const run = await h.cli(["render", "--template", template, "--out", out]);
    expect(run.code).toBe(1);
    expect(await readFile(out, "utf8")).toBe("previous\n");
  });

  it("serves the rotated token on the next run (no cache across runs)", async () => {
    const sm = new SecretsManagerClient({ region: REGION, endpoint: h.moto.url, credentials: CREDENTIALS });
    const next = h.newToken();
    await sm.send(
      new PutSecretValueCommand({
        SecretId: h.secret.arn,
        SecretString: next,
        VersionStages: ["AWSCURRENT"],
      }),
    );
    h.secret.token = next;
    const run = await h.cli(["token", "--secret-id", h.secret.name]);
    expect(run.stdout).toBe(`${next}\n`);
  });
});

h.noTokenOnStderr();
