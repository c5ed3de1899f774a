import { describe, expect, it } from "vitest";
import { consumerCli, REGION } from "../../../support/consumer-cli";

/** `bk-agent-token token` (cli/consumer/token.ts), the real bundle against moto. */
const h = consumerCli();

describe("bk-agent-token token", () => {
  it("prints the token and nothing else on stdout", async () => {
    const run = await h.cli(["token", "--secret-id", h.secret.name]);
    expect(run).toMatchObject({ code: 0, stdout: `${h.secret.token}\n` });
    expect(run.stderr).not.toContain(h.secret.token);
  });

  it("takes the secret from BUILDKITE_AGENT_TOKEN_SECRET_ID; -n drops the newline", async () => {
    const run = await h.cli(["token", "-n"], { BUILDKITE_AGENT_TOKEN_SECRET_ID: h.secret.arn });
    expect(run).toMatchObject({ code: 0, stdout: h.secret.token });
  });

  it("reads through the SSM reference path", async () => {
    const run = await h.cli(["token", "--secret-id", h.secret.arn, "--source", "ssm"]);
    expect(run).toMatchObject({ code: 0, stdout: `${h.secret.token}\n` });
  });

  it("falls back from a region without the secret to the next one", async () => {
    const run = await h.cli([
      "token",
      "--secret-id",
      h.secret.name,
      "--region",
      "eu-west-1",
      "--fallback-region",
      REGION,
    ]);
    expect(run).toMatchObject({ code: 0, stdout: `${h.secret.token}\n` });
    expect(run.stderr).toContain("fallback region");
    expect(run.stderr).not.toContain(h.secret.token);
  });

  it("assumes a role first with --assume-role, through STS at AWS_ENDPOINT_URL", async () => {
    const run = await h.cli([
      "token",
      "--secret-id",
      h.secret.name,
      "--assume-role",
      h.roleArn,
      "--role-session-name",
      "boot",
    ]);
    expect(run).toMatchObject({ code: 0, stdout: `${h.secret.token}\n` });
    // The role really is assumed: with STS unreachable the read fails.
    const broken = await h.cli(["token", "--secret-id", h.secret.name, "--assume-role", h.roleArn], {
      AWS_ENDPOINT_URL_STS: "http://127.0.0.1:1",
    });
    expect(broken.code).toBe(1);
    expect(broken.stdout).toBe("");
  });

  it("fails with exit 1, a message naming the secret and an empty stdout when the secret is missing", async () => {
    const run = await h.cli(["token", "--secret-id", "no/such/secret"]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    expect(run.stderr).toContain("no/such/secret");
    expect(run.stderr).toContain("ResourceNotFoundException");
  });

  it("reports usage errors with exit 2", async () => {
    expect((await h.cli(["token"])).code).toBe(2);
    expect((await h.cli(["token", "--secret-id", "x", "--source", "vault"])).code).toBe(2);
    expect((await h.cli(["token", "--bogus"])).code).toBe(2);
    expect((await h.cli(["no-such-command"])).code).toBe(2);
    const help = await h.cli(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/token[\s\S]*write-config[\s\S]*render/);
    expect((await h.cli(["render", "--help"])).stdout).toContain("awsSecret://");
  });
});

h.noTokenOnStderr();
